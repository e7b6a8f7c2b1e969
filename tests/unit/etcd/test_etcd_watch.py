"""The prefix watch: events in order, nothing lost across an etcd restart, a resync after compaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from etcd_server import EtcdServer

from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.kv import WatchEvent
from pynetdrv.cluster.watch import watch_prefix


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[EtcdClient]:
    async with EtcdClient.from_url(f"etcd://{etcd_server.endpoint}", timeout=2) as c:
        yield c


class Collector:
    """Runs the watch in a task, as the registry will, and collects its events."""

    def __init__(self, client: EtcdClient, prefix: bytes, start: int) -> None:
        self.events: list[WatchEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, prefix, start))

    async def _run(self, client: EtcdClient, prefix: bytes, start: int) -> None:
        async for ev in watch_prefix(client, prefix, start):
            self.events.append(ev)
            self._changed.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[WatchEvent]:
        async with asyncio.timeout(timeout):
            while len(self.events) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.events

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _summary(events: list[WatchEvent]) -> list[tuple[str, bytes, bytes]]:
    return [(e.kind, e.kv.key, e.kv.value) for e in events if e.kv is not None]


async def test_events_in_order_from_a_snapshot(client: EtcdClient, etcd_prefix: bytes) -> None:
    p = etcd_prefix
    await client.put(p + b"before", b"0")
    snap = await client.get_prefix(p)
    await client.put(p + b"a", b"1")  # after the snapshot, before the watch starts: still delivered
    w = Collector(client, p, snap.revision + 1)
    try:
        await client.put(p + b"b", b"2")
        await client.put(etcd_prefix[:-1] + b"-other", b"not ours")
        await client.delete(p + b"a")
        events = await w.wait_for(3)
        assert _summary(events) == [("put", p + b"a", b"1"), ("put", p + b"b", b"2"), ("delete", p + b"a", b"")]
        revs = [e.revision for e in events]
        assert revs == sorted(revs) and revs[0] > snap.revision
    finally:
        await w.stop()
        await client.delete(etcd_prefix[:-1] + b"-other")


async def test_watch_survives_an_etcd_restart_without_losing_events(
        etcd_restartable: EtcdServer, client: EtcdClient, etcd_prefix: bytes) -> None:
    p = etcd_prefix
    start = await client.put(p + b"k1", b"v1")
    w = Collector(client, p, start)
    try:
        await w.wait_for(1)
        etcd_restartable.stop()  # SIGTERM
        await asyncio.sleep(0.5)  # the watch sees its stream break and retries
        etcd_restartable.start()
        # Written by another client right after the restart, before the watch is back.
        async with EtcdClient.from_url(f"etcd://{etcd_restartable.endpoint}", timeout=2) as other:
            await other.put(p + b"k2", b"v2")
            await other.delete(p + b"k1")
        await client.put(p + b"k3", b"v3")  # and the first client works again without a new one
        events = await w.wait_for(4, timeout=10)
        assert _summary(events) == [("put", p + b"k1", b"v1"), ("put", p + b"k2", b"v2"),
                                    ("delete", p + b"k1", b""), ("put", p + b"k3", b"v3")]
    finally:
        await w.stop()


async def test_missed_events_are_replayed_from_the_last_revision(
        etcd_restartable: EtcdServer, client: EtcdClient, etcd_prefix: bytes) -> None:
    """The watch comes back only after the writes (its consumer was busy): they are replayed."""
    p = etcd_prefix
    start = await client.put(p + b"k1", b"v1")
    events = watch_prefix(client, p, start)
    try:
        assert _summary([await anext(events)]) == [("put", p + b"k1", b"v1")]
        etcd_restartable.stop()
        etcd_restartable.start()
        async with EtcdClient.from_url(f"etcd://{etcd_restartable.endpoint}", timeout=2) as other:
            await other.put(p + b"k2", b"v2")
            await other.put(p + b"k1", b"v1b")
        async with asyncio.timeout(10):
            got = [await anext(events), await anext(events)]
        assert _summary(got) == [("put", p + b"k2", b"v2"), ("put", p + b"k1", b"v1b")]
    finally:
        await events.aclose()


async def test_compacted_history_gives_one_resync_then_events(
        etcd_restartable: EtcdServer, client: EtcdClient, etcd_prefix: bytes) -> None:
    p = etcd_prefix
    start = await client.put(p + b"k1", b"v1")
    events = watch_prefix(client, p, start)
    try:
        first = await anext(events)
        assert _summary([first]) == [("put", p + b"k1", b"v1")]
        # The consumer is busy (not iterating) while etcd restarts and the missed history is compacted.
        etcd_restartable.stop()
        etcd_restartable.start()
        async with EtcdClient.from_url(f"etcd://{etcd_restartable.endpoint}", timeout=2) as other:
            await other.put(p + b"k2", b"v2")
            await other.delete(p + b"k1")
            rev = await other.put(p + b"k3", b"v3")
        etcd_restartable.compact(rev)
        async with asyncio.timeout(10):
            resync = await anext(events)
            assert resync.kind == "resync" and resync.snapshot is not None
            assert resync.revision >= rev
            assert {kv.key: kv.value for kv in resync.snapshot.kvs} == {p + b"k2": b"v2", p + b"k3": b"v3"}
            await client.put(p + b"k4", b"v4")
            after = await anext(events)
        assert _summary([after]) == [("put", p + b"k4", b"v4")]
        assert after.revision > resync.revision
    finally:
        await events.aclose()


async def test_start_below_the_compacted_revision_resyncs_at_once(etcd_server: EtcdServer, client: EtcdClient,
                                                                  etcd_prefix: bytes) -> None:
    p = etcd_prefix
    old = await client.put(p + b"a", b"1")
    new = await client.put(p + b"a", b"2")
    etcd_server.compact(new)
    events = watch_prefix(client, p, old)
    try:
        async with asyncio.timeout(5):
            ev = await anext(events)
        assert ev.kind == "resync" and ev.snapshot is not None
        assert [(kv.key, kv.value) for kv in ev.snapshot.kvs] == [(p + b"a", b"2")]
    finally:
        await events.aclose()


async def test_bad_start_revision_is_refused(client: EtcdClient, etcd_prefix: bytes) -> None:
    with pytest.raises(ValueError, match="start_revision must be >= 1"):
        await anext(watch_prefix(client, etcd_prefix, 0))
