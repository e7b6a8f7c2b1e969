"""What the SQLite store makes durable before it answers, and its background
checkpoints (see the module text of pynetdrv.store.sqlite)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from pynetdrv.ipam.allocator import Allocator
from pynetdrv.store.base import EndpointRecord, NetworkRecord, PoolRecord
from pynetdrv.store.sqlite import SQLiteStore

NET = "n" * 64
EP = "e" * 64


class RecordingStore(SQLiteStore):
    """Counts the WAL flushes a call waits for (the seam is the store's own
    flush step; the flush itself still runs)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.flushes = 0

    async def _durable(self) -> None:
        self.flushes += 1
        await super()._durable()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordingStore]:
    s = RecordingStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


async def flushes_of(store: RecordingStore, call: Awaitable[Any]) -> int:
    before = store.flushes
    await call
    return store.flushes - before


async def test_pools_and_networks_are_on_disk_before_the_answer(store: RecordingStore) -> None:
    """Docker keeps networks across a host reboot: losing one would break it."""
    pool = PoolRecord("L/10.9.0.0/24", "L", "10.9.0.0/24")
    net = NetworkRecord(NET, "pnbr-x", "02:00:00:00:00:01", None)
    assert await flushes_of(store, store.add_pool(pool)) == 1
    assert await flushes_of(store, store.put_network(net, 0)) == 1
    assert await flushes_of(store, store.delete_network(NET)) == 1
    assert await flushes_of(store, store.delete_pool(pool.pool_id)) == 1


async def test_addresses_and_endpoints_do_not_wait_for_the_disk(store: RecordingStore) -> None:
    """Only a host crash can lose these, and it kills their containers too."""
    await store.add_pool(PoolRecord("L/10.9.0.0/24", "L", "10.9.0.0/24"))
    await store.put_network(NetworkRecord(NET, "pnbr-x", "02:00:00:00:00:01", None), 0)
    ep = EndpointRecord(EP, NET, "pnvh", "pnvp", "02:00:00:00:00:02", "10.9.0.2/24")
    for call in (
        Allocator(store).reserve("L/10.9.0.0/24", None, "dynamic"),
        Allocator(store).release("L/10.9.0.0/24", "10.9.0.1"),
        store.put_endpoint(ep),
        store.delete_endpoint(EP),
    ):
        assert await flushes_of(store, call) == 0


async def test_the_connection_commits_without_fsync_and_never_checkpoints_itself(store: RecordingStore) -> None:
    conn = store._conn
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


async def test_background_checkpoints_keep_the_wal_bounded(tmp_path: Path) -> None:
    """Without them the WAL would grow by every commit (SQLite's automatic
    checkpoint is off on the loop's connection); checkpoints beside a steady
    stream of commits never let it start over, so past the gate writes wait."""
    path = tmp_path / "state.db"
    commits = 6000
    store = SQLiteStore(path, checkpoint_every=20, gate_frames=200)
    await store.open()
    try:
        await store.add_pool(PoolRecord("L/10.0.0.0/16", "L", "10.0.0.0/16"))
        wal = Path(f"{path}-wal")
        largest = 0
        for _ in range(commits):
            await Allocator(store).reserve("L/10.0.0.0/16", None, "dynamic")
            await asyncio.sleep(0)  # the daemon's loop runs between calls
            largest = max(largest, wal.stat().st_size)
        grown_without = commits * 4096  # a commit writes at least one page
        assert largest < grown_without / 4, (largest, grown_without)
    finally:
        await store.close()
    # Everything reached the database file, and another connection reads it.
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM allocations").fetchone()[0] == commits
