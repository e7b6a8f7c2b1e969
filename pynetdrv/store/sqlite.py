"""The SQLite Store: one file, WAL, every write a committed transaction.

Every transaction runs to completion on the event loop's own thread, without
an await inside it.  This store implements the allocation primitive of
``ipam.pool_store`` (the allocation rules are ``ipam.allocator``): a
reservation is one transaction that takes the address only if free and moves
the pool's cursor only if its version is the one the allocator read, so
allocators in other processes on the same file can race safely; the schema's
primary keys make a double allocation impossible even if that logic had a bug.

Why on the loop and not on a worker thread: with ``synchronous = NORMAL`` a
transaction is tens of microseconds of CPU and no disk wait, while handing it
to a thread and back costs ~250 us on these 2-vCPU machines (the cross-CPU
wake-up), which was most of an IPAM call (docs/benchmarks.md).  The disk work
that remains goes to one worker thread, so the loop never waits on a disk:

- Durability by kind of record.  Pools and networks outlive a host reboot
  (Docker keeps them), so their calls return only after the WAL is fsync'd
  (``_durable``, in the worker thread): as safe as ``synchronous = FULL``, and
  everything committed before is durable with them, since the WAL is
  sequential.  Addresses and endpoints are committed without that fsync: a
  pynetdrv crash (SIGKILL) loses nothing, the OS has the WAL; only a host
  crash or power loss can lose the last of them, and that same crash kills
  every container and veth they belong to (after the reboot Docker deletes
  those endpoints and releases their addresses; a lost release leaks one
  address until ``pynetdrv check --repair``, never gives one out twice).
- Checkpoints (copying the WAL into the database file, two fsyncs) run in the
  worker thread on a connection of their own; writes wait for them (reads do
  not), so each completes and the WAL stays small.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pynetdrv.errors import Conflict, Internal, VersionConflict
from pynetdrv.store import sqlite_pools as pools
from pynetdrv.store.base import (
    Allocation,
    AllocationKind,
    CursorUpdate,
    EndpointRecord,
    NetworkRecord,
    PoolRecord,
    PoolState,
    PortMapping,
    Reservation,
)
from pynetdrv.store.sqlite_file import configure, open_state
from pynetdrv.store.sqlite_schema import migrate

T = TypeVar("T")
log = logging.getLogger(__name__)

_HINTS = {
    "SQLITE_FULL": "the file system holding it is full",
    "SQLITE_READONLY": "it or its file system is read-only",
    "SQLITE_IOERR": "the file system holding it failed a read or write (read-only or failing disk?)",
    "SQLITE_CANTOPEN": "it cannot be opened (file system read-only or missing?)",
    "SQLITE_CORRUPT": "it is damaged",
}


def describe_error(path: str, err: sqlite3.Error) -> str:
    """``state file /x/state.db: database or disk is full (SQLITE_FULL: the
    file system holding it is full); the stored state was not changed``."""
    name = getattr(err, "sqlite_errorname", "") or ""
    hint = next((h for prefix, h in _HINTS.items() if name.startswith(prefix)), "")
    detail = f" ({name}: {hint})" if hint else (f" ({name})" if name else "")
    return f"state file {path}: {err}{detail}; the stored state was not changed"


#: Commits between two background checkpoints (a commit writes a few pages;
#: SQLite's own automatic checkpoint, turned off here, runs at 1,000 pages).
CHECKPOINT_EVERY = 500
#: WAL frames (pages) above which the next checkpoint makes writes wait.  A
#: checkpoint that runs beside the writer copies what was committed when it
#: began, but the WAL only starts over once one finds nothing left to copy,
#: which a steady stream of commits prevents; this bounds the WAL (~32 MiB at
#: 4 KiB pages, plus what two intervals of commits write).
GATE_FRAMES = 8192


class SQLiteStore:
    """``path`` ":memory:" gives a private in-memory database (unit tests)."""

    def __init__(
        self, path: str | Path, checkpoint_every: int = CHECKPOINT_EVERY, gate_frames: int = GATE_FRAMES
    ) -> None:
        self._path = str(path)
        self._checkpoint_every, self._gate_frames = checkpoint_every, gate_frames
        # Disk waits only: the WAL fsync of durable calls, and checkpoints.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pynetdrv-store")
        self._conn: sqlite3.Connection | None = None
        self._on_disk = self._path != ":memory:"
        self._commits = 0
        self._checkpoint: asyncio.Future[int] | None = None
        self._gated = False
        self._checkpointer: sqlite3.Connection | None = None

    # Plumbing -------------------------------------------------------------
    async def open(self) -> None:
        self._call(self._open)

    def _open(self) -> None:
        if not self._on_disk:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            configure(conn)
            migrate(conn)
        else:
            conn = open_state(Path(self._path))
            # See the module text: durability is per call (_durable), and
            # checkpoints run off the loop (_committed).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._conn = conn

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        if self._checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpointer.close)
            self._checkpointer = None
        if self._conn is not None:
            # The last connection to close checkpoints the WAL into the file.
            self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as e:
            # Disk full, read-only or failing file system: the transaction was
            # rolled back; say which file and what the disk said.
            raise Internal(describe_error(self._path, e)) from e

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) leaves the transaction open; SQLite
            # may also have rolled back already (SQLITE_FULL, SQLITE_IOERR).
            # Either way nothing of it may stay, and the original error counts.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback after a failed transaction failed")
            raise

    def _in_tx(self, fn: Callable[..., T], *args: Any) -> T:
        with self._tx() as conn:
            result = fn(conn, *args)
        self._committed()
        return result

    async def _write(self, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        """``fn(conn, *args)`` in one transaction; with ``durable`` it returns
        only once the transaction is on disk."""
        while self._checkpoint is not None and (self._gated or self._commits >= self._checkpoint_every):
            # Writes wait (a few ms; reads go on) while a checkpoint copies
            # the WAL into the file, when the WAL has grown past the gate or
            # the checkpoint fell a whole interval behind: so it finishes,
            # the next commit starts the WAL over, and the WAL stays small.
            await asyncio.wait([self._checkpoint])
        result: T = self._call(self._in_tx, fn, *args)
        if durable:
            await self._durable()
        return result

    def _read(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        """A read needs no transaction of its own: one statement sees one
        consistent snapshot."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        return self._call(lambda: conn.execute(sql, args).fetchall())

    def _reading(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        return fn(conn, *args)

    async def _durable(self) -> None:
        """fsync the WAL, off the loop: the commits so far survive a power loss
        (what ``synchronous = FULL`` does at each commit)."""
        if self._on_disk:
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, _fsync_file, self._path + "-wal")
            except OSError as e:
                raise Internal(f"state file {self._path}: cannot flush its journal to disk: {e.strerror}") from e

    def _committed(self) -> None:
        self._commits += 1
        if self._on_disk and self._commits >= self._checkpoint_every and self._checkpoint is None:
            self._start_checkpoint(gated=False)

    def _start_checkpoint(self, gated: bool) -> None:
        self._commits = 0
        self._gated = gated
        loop = asyncio.get_running_loop()
        self._checkpoint = loop.run_in_executor(self._executor, self._run_checkpoint)
        self._checkpoint.add_done_callback(self._checkpoint_done)

    def _run_checkpoint(self) -> int:
        """Worker thread: copy the WAL into the database file; returns the
        WAL's length in frames.  PASSIVE never waits for the writer on the
        loop, nor blocks it."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        _busy, frames, _copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)

    def _checkpoint_done(self, fut: asyncio.Future[int]) -> None:
        was_gated, self._checkpoint, self._gated = self._gated, None, False
        if fut.cancelled():
            return
        if fut.exception() is not None:
            # The WAL only grows until the next one succeeds; nothing is lost.
            log.warning("state file %s: background checkpoint failed: %s", self._path, fut.exception())
        elif fut.result() > self._gate_frames and not was_gated:
            # After a gated one the WAL still reports its old length: it
            # starts over at the next write, which must not wait again.
            self._start_checkpoint(gated=True)

    # Pools and addresses --------------------------------------------------
    async def add_pool(self, pool: PoolRecord) -> None:
        await self._write(pools.add_pool, pool, durable=True)

    async def get_pool(self, pool_id: str) -> PoolRecord | None:
        rows = self._read("SELECT * FROM pools WHERE pool_id = ?", pool_id)
        return pools.pool_from_row(rows[0]) if rows else None

    async def list_pools(self) -> list[PoolRecord]:
        rows = self._read("SELECT * FROM pools ORDER BY created")
        return [pools.pool_from_row(r) for r in rows]

    async def delete_pool(self, pool_id: str) -> bool:
        cur = await self._write(lambda c: c.execute("DELETE FROM pools WHERE pool_id = ?", (pool_id,)), durable=True)
        return bool(cur.rowcount)

    async def pool_state(self, pool_id: str) -> PoolState | None:
        rows = self._read("SELECT * FROM pools WHERE pool_id = ?", pool_id)
        return pools.state_from_row(rows[0]) if rows else None

    async def first_free(self, pool_id: str, lo: int, hi: int) -> int | None:
        found: int | None = self._call(self._reading, pools.first_free, pool_id, lo, hi)
        return found

    async def reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str = "", cursor: CursorUpdate | None = None
    ) -> Reservation:
        return await self._write(pools.reserve, pool_id, addr, kind, owner, cursor)

    async def release(self, pool_id: str, addr: int, family: int) -> bool:
        return await self._write(pools.release, pool_id, addr, family)

    async def allocations(self, pool_id: str) -> list[Allocation]:
        return self._call(self._reading, pools.allocations, pool_id)

    # Networks -------------------------------------------------------------
    async def put_network(self, network: NetworkRecord, expected_version: int) -> int:
        return await self._write(put_network, network, expected_version, durable=True)

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        rows = self._read("SELECT data, version FROM networks WHERE network_id = ?", network_id)
        return network_from_row(rows[0]) if rows else None

    async def list_networks(self) -> list[NetworkRecord]:
        return [network_from_row(r) for r in self._read("SELECT data, version FROM networks ORDER BY created")]

    async def delete_network(self, network_id: str) -> bool:
        return await self._delete("DELETE FROM networks WHERE network_id = ?", network_id, durable=True)

    # Endpoints ------------------------------------------------------------
    async def put_endpoint(self, endpoint: EndpointRecord) -> None:
        data = json.dumps(dataclasses.asdict(endpoint))
        await self._write(
            lambda c: c.execute(
                "INSERT INTO endpoints VALUES (?, ?, ?, ?) "
                "ON CONFLICT (endpoint_id) DO UPDATE SET data = excluded.data",
                (endpoint.endpoint_id, endpoint.network_id, data, time.time()),
            )
        )

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        rows = self._read("SELECT data FROM endpoints WHERE endpoint_id = ?", endpoint_id)
        return endpoint_from_row(rows[0]) if rows else None

    async def list_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]:
        if network_id is None:
            rows = self._read("SELECT data FROM endpoints ORDER BY created")
        else:
            rows = self._read("SELECT data FROM endpoints WHERE network_id = ? ORDER BY created", network_id)
        return [endpoint_from_row(r) for r in rows]

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return await self._delete("DELETE FROM endpoints WHERE endpoint_id = ?", endpoint_id)

    async def _delete(self, sql: str, *args: Any, durable: bool = False) -> bool:
        return bool((await self._write(lambda c: c.execute(sql, args), durable=durable)).rowcount)


def put_network(conn: sqlite3.Connection, network: NetworkRecord, expected_version: int) -> int:
    row = conn.execute("SELECT version FROM networks WHERE network_id = ?", (network.network_id,)).fetchone()
    stored = row[0] if row else 0
    if stored != expected_version:
        raise VersionConflict.of_network(network.network_id, stored, expected_version)
    other = conn.execute(
        "SELECT network_id FROM networks WHERE bridge = ? AND network_id != ?",
        (network.bridge, network.network_id),
    ).fetchone()
    if other is not None:
        raise Conflict(f"bridge name {network.bridge} is already used by network {other[0][:12]}")
    data = dataclasses.asdict(network)
    del data["version"]  # the column is the truth
    conn.execute(
        "INSERT INTO networks (network_id, bridge, data, created, version) VALUES (?, ?, ?, ?, 1) "
        "ON CONFLICT (network_id) DO UPDATE SET bridge = excluded.bridge, data = excluded.data, version = version + 1",
        (network.network_id, network.bridge, json.dumps(data), time.time()),
    )
    return stored + 1


def network_from_row(row: sqlite3.Row) -> NetworkRecord:
    d = json.loads(row["data"])
    d["gateways"], d["pools"] = tuple(d["gateways"]), tuple(d["pools"])
    d["version"] = row["version"]
    return NetworkRecord(**_known(NetworkRecord, d))


def endpoint_from_row(row: sqlite3.Row) -> EndpointRecord:
    d = json.loads(row["data"])
    d["ports"] = tuple(PortMapping(**p) for p in d.get("ports", ()))
    return EndpointRecord(**_known(EndpointRecord, d))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Fields of ``cls`` only: rows written by a newer pynetdrv still load;
    fields added since a row was written take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _fsync_file(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # no WAL: everything is in the database file, synced by its checkpoint
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
