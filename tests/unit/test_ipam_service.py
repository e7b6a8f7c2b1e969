"""IpamService: RequestPool/ReleasePool (explicit and automatic pools),
capabilities, and the error messages a user sees in ``docker`` output."""

from __future__ import annotations

import asyncio
from pathlib import Path

import netaddr
import pytest
from unit_helpers import GATEWAY_OPTS, allocated, free_ranges

from pynetdrv.api import ipam_models as m
from pynetdrv.config import Config, DefaultPool
from pynetdrv.errors import Conflict, InvalidParameter, NotFound, PynetdrvError, Unavailable
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane


def pool_req(pool: str = "", sub: str = "", v6: bool = False, space: str = "local",
             **options: str) -> m.RequestPoolRequest:
    return m.RequestPoolRequest(AddressSpace=space, Pool=pool, SubPool=sub, V6=v6, Options=options or None)


async def cidrs(store: SQLiteStore) -> list[str]:
    return [p.cidr for p in await store.list_pools()]


def disjoint(nets: list[str]) -> bool:
    parsed = [netaddr.IPNetwork(n) for n in nets]
    return all(a.version != b.version or a.last < b.first or b.last < a.first
               for i, a in enumerate(parsed) for b in parsed[i + 1:])


# Capabilities ----------------------------------------------------------------------------

async def test_capabilities_need_no_replay(ipam: IpamService) -> None:
    caps = await ipam.capabilities(None)
    assert caps.RequiresRequestReplay is False and caps.RequiresMACAddress is False


# Explicit pools ---------------------------------------------------------------------------

async def test_explicit_pool_is_returned_as_asked(ipam: IpamService, store: SQLiteStore) -> None:
    resp = await ipam.request_pool(pool_req("10.20.0.0/16", "10.20.5.0/24", ipamkey="ipamval"))
    assert resp.Pool == "10.20.0.0/16" and resp.Data == {}
    rec = await store.get_pool(resp.PoolID)
    assert rec is not None
    assert (rec.cidr, rec.subpool, rec.automatic) == ("10.20.0.0/16", "10.20.5.0/24", False)
    assert rec.options == {"ipamkey": "ipamval"}


async def test_overlapping_pool_is_refused_naming_both_and_changes_nothing(ipam: IpamService,
                                                                            store: SQLiteStore) -> None:
    first = await ipam.request_pool(pool_req("10.1.0.0/16"))
    await ipam.request_address(m.RequestAddressRequest(PoolID=first.PoolID, Address="", Options=GATEWAY_OPTS))
    before = (await store.list_pools(), await store.allocations(first.PoolID))
    for overlapping in ("10.1.2.0/24", "10.0.0.0/8", "10.1.0.0/16"):
        with pytest.raises(Conflict) as e:
            await ipam.request_pool(pool_req(overlapping))
        assert overlapping in str(e.value) and "10.1.0.0/16" in str(e.value)
    assert (await store.list_pools(), await store.allocations(first.PoolID)) == before


async def test_different_families_never_overlap(ipam: IpamService, store: SQLiteStore) -> None:
    await ipam.request_pool(pool_req("10.0.0.0/8"))
    await ipam.request_pool(pool_req("::/0"))
    assert sorted(await cidrs(store)) == ["10.0.0.0/8", "::/0"]


async def test_adjacent_pools_do_not_overlap(ipam: IpamService) -> None:
    await ipam.request_pool(pool_req("10.1.0.0/24"))
    await ipam.request_pool(pool_req("10.1.1.0/24"))
    await ipam.request_pool(pool_req("10.0.255.0/24"))


@pytest.mark.parametrize(("pool", "sub"), [
    ("10.20.0.0/16", "10.21.5.0/24"),
    ("10.20.0.0/16", "10.0.0.0/8"),
    ("10.20.0.0/16", "fd00::/64"),
])
async def test_ip_range_outside_subnet_is_refused(ipam: IpamService, store: SQLiteStore, pool: str, sub: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        await ipam.request_pool(pool_req(pool, sub))
    assert sub in str(e.value) and pool in str(e.value)
    assert await store.list_pools() == []


@pytest.mark.parametrize("sub", ["10.20.0.0/32", "10.20.255.255/32"])
async def test_ip_range_without_assignable_address_is_refused(ipam: IpamService, store: SQLiteStore, sub: str) -> None:
    with pytest.raises(InvalidParameter, match="no assignable"):
        await ipam.request_pool(pool_req("10.20.0.0/16", sub))
    assert await store.list_pools() == []


async def test_host_bits_set_suggests_the_network(ipam: IpamService, store: SQLiteStore) -> None:
    with pytest.raises(InvalidParameter) as e:
        await ipam.request_pool(pool_req("10.20.3.4/16"))
    assert "10.20.3.4/16" in str(e.value) and "10.20.0.0/16" in str(e.value)
    with pytest.raises(InvalidParameter, match=r"10\.20\.5\.0/24"):
        await ipam.request_pool(pool_req("10.20.0.0/16", "10.20.5.9/24"))
    assert await store.list_pools() == []


@pytest.mark.parametrize("bad", ["10.20.0.0", "10.20.0.0/33", "banana/16", "fd00::/129"])
async def test_malformed_subnet_is_refused_by_name(ipam: IpamService, bad: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        await ipam.request_pool(pool_req(bad))
    assert bad in str(e.value)


async def test_ip_range_without_subnet_is_refused(ipam: IpamService, store: SQLiteStore) -> None:
    with pytest.raises(InvalidParameter, match=r"10\.20\.5\.0/24") as e:
        await ipam.request_pool(pool_req("", "10.20.5.0/24"))
    assert "subnet" in str(e.value)
    assert await store.list_pools() == []


async def test_ipv6_pool_is_normalised(ipam: IpamService) -> None:
    a = await ipam.request_pool(pool_req("FD00:30:0::/64"))
    assert a.Pool == "fd00:30::/64"
    await ipam.release_pool(m.PoolRef(PoolID=a.PoolID))
    b = await ipam.request_pool(pool_req("fd00:30::/64"))
    assert b.PoolID == a.PoolID


# Automatic pools ---------------------------------------------------------------------------

async def test_two_automatic_pools_differ_and_do_not_overlap(ipam: IpamService, store: SQLiteStore) -> None:
    a = await ipam.request_pool(pool_req())
    b = await ipam.request_pool(pool_req())
    assert a.Pool != b.Pool and a.PoolID != b.PoolID
    assert disjoint([a.Pool, b.Pool])
    for p in (a.Pool, b.Pool):
        net = netaddr.IPNetwork(p)
        assert net.version == 4 and net.prefixlen == 24 and net in netaddr.IPNetwork("10.200.0.0/13")
    recs = await store.list_pools()
    assert all(r.automatic for r in recs)


async def test_automatic_pool_skips_host_routes(ipam: IpamService, dp: FakeDataplane) -> None:
    dp.routes[:] = ["10.200.0.0/24", "10.200.2.0/23", "fd70:6e64::/64", "192.168.1.0/24"]
    a = await ipam.request_pool(pool_req())
    b = await ipam.request_pool(pool_req())
    assert (a.Pool, b.Pool) == ("10.200.1.0/24", "10.200.4.0/24")
    v6 = await ipam.request_pool(pool_req(v6=True))
    assert v6.Pool != "fd70:6e64::/64" and netaddr.IPNetwork(v6.Pool) in netaddr.IPNetwork("fd70:6e64::/32")
    assert disjoint([*dp.routes, a.Pool, b.Pool, v6.Pool])


async def test_automatic_pool_jumps_past_a_covering_route(ipam: IpamService, dp: FakeDataplane) -> None:
    dp.routes[:] = ["10.200.0.0/14"]
    a = await ipam.request_pool(pool_req())
    assert a.Pool == "10.204.0.0/24"


async def test_automatic_pool_skips_existing_pools(ipam: IpamService) -> None:
    await ipam.request_pool(pool_req("10.200.0.0/16"))
    a = await ipam.request_pool(pool_req())
    assert netaddr.IPNetwork(a.Pool) not in netaddr.IPNetwork("10.200.0.0/16")
    assert disjoint(["10.200.0.0/16", a.Pool])


async def test_explicit_pool_over_an_automatic_one_is_refused(ipam: IpamService) -> None:
    a = await ipam.request_pool(pool_req())
    with pytest.raises(Conflict, match=a.Pool):
        await ipam.request_pool(pool_req(a.Pool))


async def test_v6_gives_an_ipv6_pool(ipam: IpamService) -> None:
    a = await ipam.request_pool(pool_req(v6=True))
    b = await ipam.request_pool(pool_req(v6=True))
    for p in (a.Pool, b.Pool):
        net = netaddr.IPNetwork(p)
        assert net.version == 6 and net.prefixlen == 64 and net in netaddr.IPNetwork("fd70:6e64::/32")
    assert disjoint([a.Pool, b.Pool])
    gw = await ipam.request_address(m.RequestAddressRequest(PoolID=a.PoolID, Address="", Options=GATEWAY_OPTS))
    assert netaddr.IPNetwork(gw.Address).ip == netaddr.IPNetwork(a.Pool).network + 1


async def test_released_automatic_pool_is_handed_out_again(ipam: IpamService) -> None:
    a = await ipam.request_pool(pool_req())
    await ipam.release_pool(m.PoolRef(PoolID=a.PoolID))
    b = await ipam.request_pool(pool_req())
    assert (b.PoolID, b.Pool) == (a.PoolID, a.Pool)


async def test_exhausted_default_ranges_give_a_clear_error(store: SQLiteStore, dp: FakeDataplane) -> None:
    cfg = Config(default_pools=(DefaultPool.parse("base=10.9.0.0/23,size=24"),))
    ipam = IpamService(store, cfg, dp.host_routes)
    got = [(await ipam.request_pool(pool_req())).Pool for _ in range(2)]
    assert sorted(got) == ["10.9.0.0/24", "10.9.1.0/24"]
    with pytest.raises(Unavailable) as e:
        await ipam.request_pool(pool_req())
    assert "10.9.0.0/23" in str(e.value) and "IPv4" in str(e.value)
    # No IPv6 range configured at all: also a clear error, not a crash.
    with pytest.raises(Unavailable, match="IPv6"):
        await ipam.request_pool(pool_req(v6=True))
    assert sorted(await cidrs(store)) == got


async def test_routes_can_exhaust_the_default_ranges(store: SQLiteStore, dp: FakeDataplane) -> None:
    cfg = Config(default_pools=(DefaultPool.parse("base=10.9.0.0/23,size=24"),))
    dp.routes[:] = ["10.9.1.0/24", "10.8.0.0/15"]
    ipam = IpamService(store, cfg, dp.host_routes)
    with pytest.raises(Unavailable, match=r"10\.9\.0\.0/23"):
        await ipam.request_pool(pool_req())


async def test_several_default_ranges_are_used_in_order(store: SQLiteStore, dp: FakeDataplane) -> None:
    cfg = Config(default_pools=(DefaultPool.parse("base=10.9.0.0/24,size=24"),
                                DefaultPool.parse("base=172.30.0.0/16,size=20")))
    ipam = IpamService(store, cfg, dp.host_routes)
    got = [(await ipam.request_pool(pool_req())).Pool for _ in range(3)]
    assert got == ["10.9.0.0/24", "172.30.0.0/20", "172.30.16.0/20"]


async def test_concurrent_automatic_pools_are_distinct(ipam: IpamService, store: SQLiteStore) -> None:
    """Docker serves API calls concurrently: parallel ``network create``
    without --subnet must each get their own pool while plenty are free."""
    results = await asyncio.gather(*(ipam.request_pool(pool_req()) for _ in range(24)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of 24 concurrent RequestPool calls failed: {errors[0]}"
    pools = [r.Pool for r in results if isinstance(r, m.RequestPoolResponse)]
    assert len(set(pools)) == 24 and disjoint(pools)


async def test_a_few_concurrent_automatic_pools_are_distinct(ipam: IpamService) -> None:
    results = await asyncio.gather(*(ipam.request_pool(pool_req(v6=i % 2 == 1)) for i in range(10)))
    assert disjoint([r.Pool for r in results]) and len({r.PoolID for r in results}) == 10


# Release and unknown pools -------------------------------------------------------------------

async def test_release_pool_is_idempotent(ipam: IpamService, store: SQLiteStore) -> None:
    a = await ipam.request_pool(pool_req("10.5.0.0/24"))
    b = await ipam.request_pool(pool_req("10.6.0.0/24"))
    for _ in range(2):
        assert (await ipam.release_pool(m.PoolRef(PoolID=a.PoolID))).model_dump() == {}
    await ipam.release_pool(m.PoolRef(PoolID="local/10.99.0.0/24"))
    assert await cidrs(store) == ["10.6.0.0/24"]
    assert (await store.get_pool(b.PoolID)) is not None


async def test_release_pool_drops_its_allocations(tmp_path: Path, dp: FakeDataplane) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    await store.open()
    try:
        ipam = IpamService(store, Config(), dp.host_routes)
        a = await ipam.request_pool(pool_req("10.5.0.0/24"))
        await ipam.request_address(m.RequestAddressRequest(PoolID=a.PoolID, Address="", Options=GATEWAY_OPTS))
        await ipam.request_address(m.RequestAddressRequest(PoolID=a.PoolID, Address="10.5.0.9"))
        assert len(allocated(db, a.PoolID)) == 2
        await ipam.release_pool(m.PoolRef(PoolID=a.PoolID))
        assert allocated(db, a.PoolID) == [] and free_ranges(db, a.PoolID) == []
        # Requested again, it starts empty: the old addresses are free.
        again = await ipam.request_pool(pool_req("10.5.0.0/24"))
        gw = await ipam.request_address(m.RequestAddressRequest(PoolID=again.PoolID, Address="", Options=GATEWAY_OPTS))
        assert gw.Address == "10.5.0.1/24"
        assert free_ranges(db, again.PoolID) == [(int(netaddr.IPAddress("10.5.0.2")),
                                                  int(netaddr.IPAddress("10.5.0.254")))]
    finally:
        await store.close()


async def test_release_address_is_idempotent(ipam: IpamService, store: SQLiteStore) -> None:
    a = await ipam.request_pool(pool_req("10.5.0.0/24"))
    await ipam.request_address(m.RequestAddressRequest(PoolID=a.PoolID, Address="10.5.0.7"))
    for _ in range(2):
        await ipam.release_address(m.ReleaseAddressRequest(PoolID=a.PoolID, Address="10.5.0.7"))
    await ipam.release_address(m.ReleaseAddressRequest(PoolID=a.PoolID, Address="10.5.0.8"))
    await ipam.release_address(m.ReleaseAddressRequest(PoolID=a.PoolID, Address="fd00::1"))
    await ipam.release_address(m.ReleaseAddressRequest(PoolID="local/10.99.0.0/24", Address="10.99.0.2"))
    assert await store.allocations(a.PoolID) == []


async def test_request_address_on_unknown_pool_names_it(ipam: IpamService) -> None:
    with pytest.raises(PynetdrvError) as e:
        await ipam.request_address(m.RequestAddressRequest(PoolID="local/10.77.0.0/24", Address=""))
    assert isinstance(e.value, NotFound)
    assert "local/10.77.0.0/24" in str(e.value)


async def test_request_address_after_release_pool_fails(ipam: IpamService) -> None:
    a = await ipam.request_pool(pool_req("10.5.0.0/24"))
    await ipam.release_pool(m.PoolRef(PoolID=a.PoolID))
    with pytest.raises(PynetdrvError, match=a.PoolID):
        await ipam.request_address(m.RequestAddressRequest(PoolID=a.PoolID, Address=""))


# PoolID stability ---------------------------------------------------------------------------

async def test_pool_id_is_stable_across_stores_and_releases(dp: FakeDataplane) -> None:
    ids = []
    for _ in range(2):
        store = SQLiteStore(":memory:")
        await store.open()
        try:
            ipam = IpamService(store, Config(), dp.host_routes)
            a = await ipam.request_pool(pool_req("10.20.0.0/16", "10.20.5.0/24"))
            await ipam.release_pool(m.PoolRef(PoolID=a.PoolID))
            b = await ipam.request_pool(pool_req("10.20.0.0/16"))
            assert b.PoolID == a.PoolID
            ids.append(a.PoolID)
        finally:
            await store.close()
    assert ids[0] == ids[1]


async def test_pool_ids_of_different_pools_differ(ipam: IpamService) -> None:
    ids = {(await ipam.request_pool(pool_req(p))).PoolID for p in ("10.1.0.0/24", "10.1.1.0/24", "fd00::/64")}
    assert len(ids) == 3


async def test_empty_address_space_is_the_local_default(ipam: IpamService, store: SQLiteStore) -> None:
    a = await ipam.request_pool(pool_req("10.1.0.0/24", space=""))
    rec = await store.get_pool(a.PoolID)
    assert rec is not None and rec.address_space == "local"
