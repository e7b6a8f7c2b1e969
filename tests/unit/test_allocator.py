"""Address allocation: the SQLite store's free-range allocator and the
IpamService's RequestAddress/ReleaseAddress on top of it."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from pathlib import Path

import netaddr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_helpers import GATEWAY_OPTS, allocated, free_ranges

from pynetdrv.api import ipam_models as m
from pynetdrv.errors import Conflict, InvalidParameter, NotFound, Unavailable
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.base import PoolRecord
from pynetdrv.store.sqlite import SQLiteStore


async def new_pool(ipam: IpamService, cidr: str, subpool: str = "") -> str:
    return (await ipam.request_pool(m.RequestPoolRequest(AddressSpace="local", Pool=cidr, SubPool=subpool))).PoolID


async def ask(ipam: IpamService, pool_id: str, address: str = "", gateway: bool = False) -> str:
    req = m.RequestAddressRequest(PoolID=pool_id, Address=address, Options=GATEWAY_OPTS if gateway else None)
    return (await ipam.request_address(req)).Address


async def give_back(ipam: IpamService, pool_id: str, address: str) -> None:
    await ipam.release_address(m.ReleaseAddressRequest(PoolID=pool_id, Address=address))


async def held(store: SQLiteStore, pool_id: str) -> list[tuple[str, str]]:
    return [(a.address, a.kind) for a in await store.allocations(pool_id)]


# Order, gateway, static addresses -----------------------------------------------------

async def test_cursor_order_reuses_released_address_only_after_the_rest(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.0.0.0/29")  # usable .1 - .6
    assert await ask(ipam, pid, gateway=True) == "10.0.0.1/29"
    assert [await ask(ipam, pid) for _ in range(3)] == ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29"]
    await give_back(ipam, pid, "10.0.0.3")
    assert await ask(ipam, pid) == "10.0.0.5/29"
    assert await ask(ipam, pid) == "10.0.0.6/29"
    assert await ask(ipam, pid) == "10.0.0.3/29"  # wrapped round to the released one
    with pytest.raises(Unavailable):
        await ask(ipam, pid)


async def test_static_reservation_does_not_move_the_cursor(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    assert await ask(ipam, pid, "10.0.0.100") == "10.0.0.100/24"
    assert await ask(ipam, pid) == "10.0.0.1/24"
    assert await ask(ipam, pid) == "10.0.0.2/24"


async def test_automatic_addresses_skip_static_ones(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    await ask(ipam, pid, "10.0.0.2")
    await ask(ipam, pid, "10.0.0.3")
    assert [await ask(ipam, pid) for _ in range(2)] == ["10.0.0.1/24", "10.0.0.4/24"]


async def test_gateway_gets_first_address_by_default(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "192.168.7.0/24")
    assert await ask(ipam, pid, gateway=True) == "192.168.7.1/24"
    assert await held(store, pid) == [("192.168.7.1", "gateway")]


async def test_explicit_gateway_is_honoured(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16", "10.20.5.0/24")
    assert await ask(ipam, pid, "10.20.0.254", gateway=True) == "10.20.0.254/16"
    assert await held(store, pid) == [("10.20.0.254", "gateway")]
    # The first automatic address comes from the ip-range, not .1.
    assert await ask(ipam, pid) == "10.20.5.0/16"


async def test_default_gateway_when_first_address_is_taken(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    await ask(ipam, pid, "10.0.0.1")  # an aux address got there first
    gw = await ask(ipam, pid, gateway=True)
    assert gw == "10.0.0.2/24"
    assert ("10.0.0.2", "gateway") in await held(store, pid)


async def test_aux_outside_ip_range_but_inside_pool_is_accepted(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16", "10.20.5.0/24")
    assert await ask(ipam, pid, "10.20.0.10") == "10.20.0.10/16"
    assert ("10.20.0.10", "static") in await held(store, pid)


async def test_static_outside_pool_is_refused_naming_the_pool(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    for outside in ("10.21.0.1", "fd00::1"):
        with pytest.raises(InvalidParameter, match=r"10\.20\.0\.0/16") as e:
            await ask(ipam, pid, outside)
        assert outside in str(e.value)
    assert await held(store, pid) == []


@pytest.mark.parametrize("address", ["10.20.0.0", "10.20.255.255"])
async def test_network_and_broadcast_are_refused(ipam: IpamService, store: SQLiteStore, address: str) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    with pytest.raises(InvalidParameter, match="network or broadcast") as e:
        await ask(ipam, pid, address)
    assert address in str(e.value) and "10.20.0.0/16" in str(e.value)
    assert await held(store, pid) == []


async def test_garbage_address_is_refused(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    for bad in ("10.20.0.5/16", "10.20", "not-an-ip"):
        with pytest.raises(InvalidParameter, match="not a valid IP"):
            await ask(ipam, pid, bad)


async def test_duplicate_static_is_a_conflict_and_changes_nothing(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    await ask(ipam, pid, gateway=True)
    await ask(ipam, pid, "10.20.3.3")
    await ask(ipam, pid)
    before = await held(store, pid)
    for dup in ("10.20.3.3", "10.20.0.1"):
        with pytest.raises(Conflict) as e:
            await ask(ipam, pid, dup)
        assert dup in str(e.value)
    with pytest.raises(Conflict, match="10.20.0.1"):
        await ask(ipam, pid, "10.20.0.1", gateway=True)
    assert await held(store, pid) == before
    # The cursor did not move either.
    assert await ask(ipam, pid) == "10.20.0.3/16"


async def test_exhaustion_names_the_pool(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.3.3.0/30")  # .1 and .2
    await ask(ipam, pid, gateway=True)
    await ask(ipam, pid)
    with pytest.raises(Unavailable, match=r"10\.3\.3\.0/30"):
        await ask(ipam, pid)
    with pytest.raises(Unavailable, match=r"10\.3\.3\.0/30"):
        await ask(ipam, pid, gateway=True)


async def test_unknown_pool_in_store_is_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match="nope"):
        await store.reserve_address("nope", None, "dynamic")
    assert await store.release_address("nope", "10.0.0.1") is False
    assert await store.allocations("nope") == []


# Small and IPv6 pools -------------------------------------------------------------------

async def test_slash_31_uses_both_addresses(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.9.9.0/31")
    assert await ask(ipam, pid, gateway=True) == "10.9.9.0/31"
    assert await ask(ipam, pid) == "10.9.9.1/31"
    with pytest.raises(Unavailable):
        await ask(ipam, pid)


async def test_slash_32_has_exactly_one_address(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.9.9.7/32")
    assert await ask(ipam, pid) == "10.9.9.7/32"
    with pytest.raises(Unavailable):
        await ask(ipam, pid)
    await give_back(ipam, pid, "10.9.9.7")
    assert await ask(ipam, pid, "10.9.9.7") == "10.9.9.7/32"


async def test_ipv6_slash_64(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "fd00:30::/64")
    assert await ask(ipam, pid, gateway=True) == "fd00:30::1/64"
    assert await ask(ipam, pid) == "fd00:30::2/64"
    # No broadcast in IPv6: the last address is assignable; ::0 (subnet-router anycast) is not.
    assert await ask(ipam, pid, "fd00:30::ffff:ffff:ffff:ffff") == "fd00:30::ffff:ffff:ffff:ffff/64"
    with pytest.raises(InvalidParameter):
        await ask(ipam, pid, "fd00:30::")
    with pytest.raises(InvalidParameter, match="fd00:30::/64"):
        await ask(ipam, pid, "fd00:31::1")
    # Written differently, the same address is the same allocation.
    with pytest.raises(Conflict):
        await ask(ipam, pid, "FD00:30:0:0::2")
    await give_back(ipam, pid, "FD00:30::2")
    assert "fd00:30::2" not in [a for a, _ in await held(store, pid)]


async def test_ipv6_slash_127_uses_both_addresses(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "fd00:1::/127")
    assert await ask(ipam, pid, gateway=True) == "fd00:1::/127"
    assert await ask(ipam, pid) == "fd00:1::1/127"
    with pytest.raises(Unavailable, match="fd00:1::/127"):
        await ask(ipam, pid)


async def test_subpool_only_constrains_automatic_addresses(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24", "10.0.0.8/30")
    assert await ask(ipam, pid, gateway=True) == "10.0.0.1/24"  # the gateway may sit outside the range
    autos = [await ask(ipam, pid) for _ in range(4)]
    assert autos == [f"10.0.0.{i}/24" for i in (8, 9, 10, 11)]
    with pytest.raises(Unavailable) as e:
        await ask(ipam, pid)
    assert "10.0.0.8/30" in str(e.value) and "10.0.0.0/24" in str(e.value)
    # By address, the whole pool is still open.
    assert await ask(ipam, pid, "10.0.0.200") == "10.0.0.200/24"
    await give_back(ipam, pid, "10.0.0.9")
    assert await ask(ipam, pid) == "10.0.0.9/24"


async def test_release_is_idempotent_and_frees(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    await ask(ipam, pid, "10.0.0.50")
    await give_back(ipam, pid, "10.0.0.50")
    await give_back(ipam, pid, "10.0.0.50")
    await give_back(ipam, pid, "10.0.0.51")  # never allocated
    await give_back(ipam, "local/10.99.0.0/24", "10.99.0.1")  # unknown pool
    assert await held(store, pid) == []
    assert await ask(ipam, pid, "10.0.0.50") == "10.0.0.50/24"


# Property tests -------------------------------------------------------------------------

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
                        await store.reserve_address(pid, None, "dynamic")
                    continue
                got = int(netaddr.IPAddress(await store.reserve_address(pid, None, "dynamic")))
                assert got not in live and got in rng
                live.add(got)
            elif kind == "static":
                if not lo <= addr <= hi:
                    with pytest.raises(InvalidParameter):
                        await store.reserve_address(pid, ip, "static")
                elif addr in live:
                    with pytest.raises(Conflict):
                        await store.reserve_address(pid, ip, "static")
                else:
                    assert await store.reserve_address(pid, ip, "static") == ip
                    live.add(addr)
            else:
                released = await store.release_address(pid, ip)
                assert released is (addr in live)
                if released:
                    live.discard(addr)
                    # Freed means reservable again.
                    assert await store.reserve_address(pid, ip, "static") == ip
                    assert await store.release_address(pid, ip) is True
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
            got = [await store.reserve_address("p", None, "dynamic") for _ in range(14)]
            assert len(set(got)) == 14
            back = {got[i] for i in release}
            for ip in back:
                assert await store.release_address("p", ip)
            again = [await store.reserve_address("p", None, "dynamic") for _ in range(len(back))]
            assert sorted(again, key=netaddr.IPAddress) == sorted(back, key=netaddr.IPAddress)
            with pytest.raises(Unavailable):
                await store.reserve_address("p", None, "dynamic")
            await _check_tables(db, "p", netaddr.IPNetwork("10.7.0.0/28"), {int(netaddr.IPAddress(a)) for a in got})
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d) / "s.db"))


# Scale ---------------------------------------------------------------------------------

async def test_fill_a_slash_16_then_exhaustion_then_exact_reuse(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.1.0.0/16")
    assert await ask(ipam, pid, gateway=True) == "10.1.0.1/16"
    t0 = time.monotonic()
    got: list[str] = []
    batch = 4096
    remaining = 65533
    while remaining:
        k = min(batch, remaining)
        got += await asyncio.gather(*(store.reserve_address(pid, None, "dynamic") for _ in range(k)))
        remaining -= k
    elapsed = time.monotonic() - t0
    assert len(got) == 65533 and len(set(got)) == 65533
    assert got[0] == "10.1.0.2" and got[-1] == "10.1.255.254"
    assert elapsed < 40, f"filling a /16 took {elapsed:.1f}s"
    with pytest.raises(Unavailable, match=r"10\.1\.0\.0/16"):
        await ask(ipam, pid)
    await give_back(ipam, pid, "10.1.128.77")
    assert await ask(ipam, pid) == "10.1.128.77/16"
    with pytest.raises(Unavailable, match=r"10\.1\.0\.0/16"):
        await ask(ipam, pid)
    assert len(await store.allocations(pid)) == 65534


async def test_slash_64_few_thousand_then_reserve_near_end_quickly(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "fd00:1::/64")
    await ask(ipam, pid, gateway=True)
    got = await asyncio.gather(*(store.reserve_address(pid, None, "dynamic") for _ in range(3000)))
    assert len(set(got)) == 3000
    assert got[-1] == str(netaddr.IPAddress(int(netaddr.IPAddress("fd00:1::")) + 3001))
    t0 = time.monotonic()
    assert await ask(ipam, pid, "fd00:1::ffff:ffff:ffff:fff0") == "fd00:1::ffff:ffff:ffff:fff0/64"
    assert await ask(ipam, pid) == "fd00:1::bba/64"
    await give_back(ipam, pid, "fd00:1::ffff:ffff:ffff:fff0")
    assert await ask(ipam, pid, "fd00:1::ffff:ffff:ffff:fff0") == "fd00:1::ffff:ffff:ffff:fff0/64"
    assert time.monotonic() - t0 < 1.0


# Concurrency --------------------------------------------------------------------------

async def test_200_concurrent_reservations_are_distinct(store: SQLiteStore) -> None:
    await store.add_pool(PoolRecord("p", "local", "10.4.0.0/24"))
    got = await asyncio.gather(*(store.reserve_address("p", None, "dynamic") for _ in range(200)))
    assert len(set(got)) == 200
    assert all(netaddr.IPAddress(ip) in netaddr.IPNetwork("10.4.0.0/24") for ip in got)
    assert sorted(a.address for a in await store.allocations("p")) == sorted(got)


async def test_200_concurrent_request_address_calls_are_distinct(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.4.0.0/24")
    got = await asyncio.gather(*(ask(ipam, pid) for _ in range(200)), ask(ipam, pid, gateway=True))
    assert len(set(got)) == 201


async def test_two_stores_on_one_file_never_hand_out_the_same_address(tmp_path: Path) -> None:
    """As with two daemons racing on one state file: the database, not a
    lock in the process, keeps reservations unique."""
    a, b = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    await a.open()
    await b.open()
    try:
        await a.add_pool(PoolRecord("p", "local", "10.5.0.0/24"))
        got = await asyncio.gather(*(s.reserve_address("p", None, "dynamic") for _ in range(100) for s in (a, b)))
        assert len(got) == 200 and len(set(got)) == 200
    finally:
        await a.close()
        await b.close()
