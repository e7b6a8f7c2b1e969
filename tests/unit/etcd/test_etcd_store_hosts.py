"""EtcdSharedStore as two hosts see it: two clients (two "hosts") allocating from one pool at once
never hand out an address twice; etcd going down makes calls fail within a bound naming etcd, and the
same clients carry on once it is back, still without a duplicate."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import netaddr
import pytest
from etcd_server import EtcdServer

from pynetdrv.cluster.errors import EtcdUnavailable
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.errors import Unavailable
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.ipam.records import PoolRecord
from pynetdrv.store.etcd_shared import EtcdSharedStore

POOL = PoolRecord("p", "global", "10.77.0.0/24")
ALL = {str(ip) for ip in netaddr.IPNetwork(POOL.cidr).iter_hosts()}


async def _drain(alloc: Allocator, got: list[str]) -> None:
    """Take dynamic addresses until the pool is full."""
    while True:
        try:
            got.append(await alloc.reserve("p", None, "dynamic"))
        except Unavailable as e:
            assert "no free address left in pool 10.77.0.0/24" in str(e)
            return


async def test_two_hosts_draining_one_pool_hand_out_every_address_once(etcd_server: EtcdServer,
                                                                       etcd_prefix: bytes) -> None:
    url = f"etcd://{etcd_server.endpoint}"
    # Uniqueness is tested here, not latency: a generous call bound for 8 contending allocators on a
    # loaded machine (with 5 s, one call timed out under load: "etcd ... unavailable").
    async with EtcdClient.from_url(url, timeout=20) as c1, EtcdClient.from_url(url, timeout=20) as c2:
        h1, h2 = EtcdSharedStore(c1, etcd_prefix), EtcdSharedStore(c2, etcd_prefix)
        await h1.add_pool(POOL)
        got1: list[str] = []
        got2: list[str] = []
        # Four concurrent allocators per host, all on the same pool.
        await asyncio.gather(*(_drain(Allocator(h), got) for h, got in ((h1, got1), (h2, got2)) for _ in range(4)))
        handed = got1 + got2
        assert [ip for ip, k in Counter(handed).items() if k > 1] == []
        assert set(handed) == ALL and len(handed) == len(ALL)
        assert got1 and got2  # both hosts really took part
        stored = await h2.allocations("p")
        assert [a.address for a in stored] == sorted(handed, key=lambda ip: int(netaddr.IPAddress(ip)))


async def test_two_hosts_asking_for_one_static_address_one_wins(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    url = f"etcd://{etcd_server.endpoint}"
    async with EtcdClient.from_url(url, timeout=5) as c1, EtcdClient.from_url(url, timeout=5) as c2:
        h1, h2 = EtcdSharedStore(c1, etcd_prefix), EtcdSharedStore(c2, etcd_prefix)
        await h1.add_pool(POOL)
        addr = int(netaddr.IPAddress("10.77.0.9"))
        for _ in range(20):
            a, b = await asyncio.gather(h1.reserve("p", addr, "static", "one"), h2.reserve("p", addr, "static", "two"))
            assert sorted((a.outcome, b.outcome)) == ["reserved", "taken"]
            assert [x.address for x in await h1.allocations("p")] == ["10.77.0.9"]
            assert await h2.release("p", addr, 4) is True


async def test_etcd_down_fails_within_a_bound_naming_etcd_and_the_same_store_recovers(
        etcd_restartable: EtcdServer, etcd_prefix: bytes) -> None:
    s = etcd_restartable
    async with EtcdClient.from_url(f"etcd://{s.endpoint}", timeout=1) as c:
        store = EtcdSharedStore(c, etcd_prefix)
        alloc = Allocator(store)
        await store.add_pool(POOL)
        before = [await alloc.reserve("p", None, "dynamic") for _ in range(3)]
        s.stop()
        for call in (alloc.reserve("p", None, "dynamic"), alloc.reserve("p", "10.77.0.50", "static"),
                     store.release("p", int(netaddr.IPAddress(before[0])), 4), store.pool_state("p"),
                     store.first_free("p", 1, 2), store.list_networks()):
            start = time.monotonic()
            with pytest.raises(EtcdUnavailable) as e:
                await call
            assert time.monotonic() - start < 2.5
            assert str(e.value).startswith(f"etcd {s.endpoint} unavailable: ")
        s.start()
        deadline = time.monotonic() + 8
        while True:
            try:
                after = await alloc.reserve("p", None, "dynamic")
                break
            except EtcdUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        after_more = [await alloc.reserve("p", None, "dynamic") for _ in range(2)]
        handed = [*before, after, *after_more]
        assert handed == [f"10.77.0.{i}" for i in range(1, 7)]  # round robin resumed, nothing twice
        assert [a.address for a in await store.allocations("p")] == handed  # nothing written while down


async def test_two_hosts_adding_overlapping_pools_at_once_one_wins(etcd_server: EtcdServer,
                                                                  etcd_prefix: bytes) -> None:
    url = f"etcd://{etcd_server.endpoint}"
    async with EtcdClient.from_url(url, timeout=5) as c1, EtcdClient.from_url(url, timeout=5) as c2:
        h1, h2 = EtcdSharedStore(c1, etcd_prefix), EtcdSharedStore(c2, etcd_prefix)
        for i in range(10):
            a, b = PoolRecord(f"a{i}", "global", f"10.{i}.0.0/16"), PoolRecord(f"b{i}", "global", f"10.{i}.128.0/17")
            done = await asyncio.gather(h1.add_pool(a), h2.add_pool(b), return_exceptions=True)
            assert sorted(type(x).__name__ for x in done) == ["Conflict", "NoneType"]
            assert len([p for p in await h1.list_pools() if p.pool_id in (a.pool_id, b.pool_id)]) == 1


async def test_first_free_pages_past_many_allocations(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    """More allocated keys than one range page: the gap after them is still found."""
    async with EtcdClient.from_url(f"etcd://{etcd_server.endpoint}", timeout=5) as c:
        store = EtcdSharedStore(c, etcd_prefix)
        await store.add_pool(PoolRecord("big", "global", "10.78.0.0/22"))
        base = int(netaddr.IPAddress("10.78.0.0"))
        held = [a for a in range(base + 1, base + 701) if a != base + 600]
        for i in range(0, len(held), 50):
            await asyncio.gather(*(store.reserve("big", a, "static") for a in held[i:i + 50]))
        assert await store.first_free("big", base + 1, base + 1022) == base + 600
        assert (await store.reserve("big", base + 600, "static")).outcome == "reserved"
        assert await store.first_free("big", base + 1, base + 1022) == base + 701
        assert await store.first_free("big", base + 1, base + 700) is None
