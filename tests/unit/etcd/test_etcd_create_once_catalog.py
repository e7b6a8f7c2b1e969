"""The create-once catalog (pynetdrv.createonce.catalog) against a real etcd: entries round-trip,
writes are compare-and-swap on the mod revision (a stale writer loses, nothing is overwritten), a
delete of a changed entry is refused, and ``changes`` wakes on every write. Then two hosts' syncs
over the real catalog with fake Dockers (tests/fakes/create_once.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from etcd_server import EtcdServer

from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.createonce.catalog import Catalog, Entry, Spec, Subnet
from pynetdrv.createonce.sync import CreateOnceSync
from tests.fakes.create_once import FakeEngine

SPEC = Spec((Subnet("10.77.0.0/24", "10.77.0.1"), Subnet("fd00:77::/64")), {"com.docker.network.driver.mtu": "1400"},
            {"team": "a"}, "pynetdrv", {"x": "y"}, True, False, False)


@pytest.fixture
async def catalog(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[Catalog]:
    async with EtcdClient.from_url(f"etcd://{etcd_server.endpoint}", timeout=2) as c:
        yield Catalog(c, etcd_prefix)


async def test_entries_round_trip_under_their_quoted_name(catalog: Catalog) -> None:
    e = Entry("my/net", 1, SPEC, {"10.0.0.1": "aa"})
    assert await catalog.write(e)
    rev, entries = await catalog.read()
    got = entries["my/net"]
    assert got.revision > 0 and rev >= got.revision
    assert replace(got, revision=0) == e
    assert catalog.key("my/net").endswith(b"catalog/my%2Fnet")
    assert await catalog.get("my/net") == got
    assert await catalog.get("other") is None


async def test_writes_are_compare_and_swap(catalog: Catalog) -> None:
    e = Entry("demo", 1, SPEC, {"10.0.0.1": "aa"})
    assert await catalog.write(e)
    assert not await catalog.write(e), "a second create of the same name must lose"
    first = await catalog.get("demo")
    assert first is not None
    assert await catalog.write(first.with_host("10.0.0.2", "bb"))
    assert not await catalog.write(first.with_host("10.0.0.3", "cc")), "a stale writer must lose"
    now = await catalog.get("demo")
    assert now is not None and dict(now.hosts) == {"10.0.0.1": "aa", "10.0.0.2": "bb"}
    assert not await catalog.delete(first), "a delete of a changed entry must be refused"
    assert await catalog.delete(now)
    assert await catalog.get("demo") is None


async def test_garbage_under_the_prefix_is_skipped(catalog: Catalog) -> None:
    await catalog.client.put(catalog.key("junk"), b"not json")
    assert await catalog.write(Entry("demo", 1, SPEC))
    _, entries = await catalog.read()
    assert set(entries) == {"demo"}


async def test_changes_wakes_on_every_write(catalog: Catalog) -> None:
    woken = asyncio.Event()
    count = 0

    async def watch() -> None:
        nonlocal count
        async for _ in catalog.changes():
            count += 1
            woken.set()

    task = asyncio.create_task(watch())
    try:
        async with asyncio.timeout(5):
            await woken.wait()  # once at start
            woken.clear()
            assert await catalog.write(Entry("demo", 1, SPEC))
            await woken.wait()
        assert count == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_two_hosts_over_the_real_catalog(catalog: Catalog) -> None:
    d1, d2 = FakeEngine(), FakeEngine()
    s1, s2 = CreateOnceSync(catalog, d1, "10.0.0.1"), CreateOnceSync(catalog, d2, "10.0.0.2")
    d1.user_create("demo", SPEC)
    for _ in range(3):
        assert await s1.run_once() and await s2.run_once()
    net = d2.by_name("demo")
    assert net is not None and net.spec == SPEC
    entry = await catalog.get("demo")
    assert entry is not None and set(entry.hosts) == {"10.0.0.1", "10.0.0.2"}
    d1.user_remove("demo")
    for _ in range(3):
        assert await s1.run_once() and await s2.run_once()
    assert d2.by_name("demo") is None and await catalog.get("demo") is None
