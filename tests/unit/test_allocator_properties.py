"""Address allocation, property-based (hypothesis): random reserve/release
sequences on the SQLite store keep its free-range and allocation tables
consistent, and released addresses come back exactly once."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path

import netaddr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_helpers import allocated, free_ranges

from pynetdrv.errors import Conflict, InvalidParameter, Unavailable
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.store.base import PoolRecord
from pynetdrv.store.sqlite import SQLiteStore

POOLS = [
    ("10.9.0.0/28", None),
    ("10.9.0.0/28", "10.9.0.4/30"),
    ("10.9.0.0/28", "10.9.0.8/29"),
    ("10.9.0.0/30", None),
    ("10.9.0.0/31", None),
    ("fd00::/124", None),
    ("fd00::/124", "fd00::8/125"),
    ("fd00::/127", None),
]

op = st.one_of(
    st.tuples(st.just("auto"), st.just(0)),
    st.tuples(st.just("static"), st.integers(0, 15)),
    st.tuples(st.just("release"), st.integers(0, 15)),
)


async def _check_tables(db: Path, pool_id: str, net: netaddr.IPNetwork, live: set[int]) -> None:
    ranges = free_ranges(db, pool_id)
    for (a, b), (c, _) in itertools.pairwise(ranges):
        assert a <= b < c, f"free ranges overlap or are unsorted: {ranges}"
    free = set()
    for a, b in ranges:
        assert a <= b
        free |= set(range(a, b + 1))
    alloc = set(allocated(db, pool_id))
    assert alloc == live
    if net.version == 4 and net.prefixlen <= 30:
        reserved = {int(net.first), int(net.last)}
    elif net.version == 6 and net.prefixlen <= 126:
        reserved = {int(net.first)}
    else:
        reserved = set()
    whole = set(range(int(net.first), int(net.last) + 1))
    assert not free & alloc and not free & reserved and not alloc & reserved
    assert free | alloc | reserved == whole


async def _run_ops(db: Path, cidr: str, subpool: str | None, ops: list[tuple[str, int]]) -> None:
    net = netaddr.IPNetwork(cidr)
    v4_bcast = net.version == 4 and net.prefixlen <= 30
    lo = int(net.first) + (1 if v4_bcast or (net.version == 6 and net.prefixlen <= 126) else 0)
    hi = int(net.last) - (1 if v4_bcast else 0)
    rng = set(range(lo, hi + 1))
    if subpool:
        sub = netaddr.IPNetwork(subpool)
        rng &= set(range(int(sub.first), int(sub.last) + 1))
    store = SQLiteStore(db)
    await store.open()
    try:
        pid = "p"
        await store.add_pool(PoolRecord(pid, "local", cidr, subpool))
        live: set[int] = set()
        for kind, n in ops:
            addr = int(net.first) + n % net.size
            ip = str(netaddr.IPAddress(addr, net.version))
            if kind == "auto":
                if rng <= live:
                    with pytest.raises(Unavailable):
                        await Allocator(store).reserve(pid, None, "dynamic")
                    continue
                got = int(netaddr.IPAddress(await Allocator(store).reserve(pid, None, "dynamic")))
                assert got not in live and got in rng
                live.add(got)
            elif kind == "static":
                if not lo <= addr <= hi:
                    with pytest.raises(InvalidParameter):
                        await Allocator(store).reserve(pid, ip, "static")
                elif addr in live:
                    with pytest.raises(Conflict):
                        await Allocator(store).reserve(pid, ip, "static")
                else:
                    assert await Allocator(store).reserve(pid, ip, "static") == ip
                    live.add(addr)
            else:
                released = await Allocator(store).release(pid, ip)
                assert released is (addr in live)
                if released:
                    live.discard(addr)
                    # Freed means reservable again.
                    assert await Allocator(store).reserve(pid, ip, "static") == ip
                    assert await Allocator(store).release(pid, ip) is True
            assert {int(netaddr.IPAddress(a.address)) for a in await store.allocations(pid)} == live
            await _check_tables(db, pid, net, live)
    finally:
        await store.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool=st.sampled_from(POOLS), ops=st.lists(op, min_size=1, max_size=40))
def test_property_random_reserve_release_keeps_tables_consistent(pool: tuple[str, str | None],
                                                                 ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_run_ops(Path(d) / "state.db", pool[0], pool[1], ops))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 14), release=st.sets(st.integers(0, 13), max_size=6))
def test_property_fill_release_refill_v4(n: int, release: set[int]) -> None:
    """Fill, release some, fill again: every released address comes back
    exactly once, and nothing else does."""
    async def run(db: Path) -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            await store.add_pool(PoolRecord("p", "local", "10.7.0.0/28"))
            got = [await Allocator(store).reserve("p", None, "dynamic") for _ in range(14)]
            assert len(set(got)) == 14
            back = {got[i] for i in release}
            for ip in back:
                assert await Allocator(store).release("p", ip)
            again = [await Allocator(store).reserve("p", None, "dynamic") for _ in range(len(back))]
            assert sorted(again, key=netaddr.IPAddress) == sorted(back, key=netaddr.IPAddress)
            with pytest.raises(Unavailable):
                await Allocator(store).reserve("p", None, "dynamic")
            await _check_tables(db, "p", netaddr.IPNetwork("10.7.0.0/28"), {int(netaddr.IPAddress(a)) for a in got})
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d) / "s.db"))
