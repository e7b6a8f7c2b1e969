"""registry.forget over the in-memory etcd (tests/fakes/etcd.py): what forgetting a lost host frees,
and what it leaves: its addresses (not the shared gateway), its pool uses (the pool and its VNI when
it was the last user), its leaseless registry leftovers; refused while its lease is alive;
idempotent; registry.tombstone: a forgotten host with cluster records is refused, --rejoin drops
them, a fresh state joins.  On a real etcd: tests/unit/etcd/test_etcd_forget_host.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from pynetdrv.api import ipam_models as m
from pynetdrv.cluster.errors import EtcdError, HostForgotten
from pynetdrv.config import Config
from pynetdrv.ipam.service import IpamService
from pynetdrv.registry.forget import CHUNK, HostAlive, forget_host, plan_forget
from pynetdrv.registry.member import CLUSTER_OPTION
from pynetdrv.registry.registry import LocalRecords, Registry
from pynetdrv.registry.tombstone import check_tombstone
from pynetdrv.registry.view import EndpointEntry, HostEntry
from pynetdrv.store.base import EndpointRecord, NetworkRecord
from pynetdrv.store.cluster import ClusterPools
from pynetdrv.store.etcd_keys import Keys
from pynetdrv.store.etcd_shared import EtcdSharedStore
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.etcd import FakeEtcd

PREFIX = b"/t/"
K = Keys(PREFIX)
H1, H3 = "192.0.2.1", "192.0.2.3"
GW = {m.REQUEST_ADDRESS_TYPE: m.GATEWAY_TYPE}


async def _no_routes() -> list[str]:
    return []


def _ipam(etcd: FakeEtcd, host: str) -> IpamService:
    return IpamService(ClusterPools(EtcdSharedStore(etcd, PREFIX), host), Config(), _no_routes)  # type: ignore[arg-type]


async def _net(ipam: IpamService, subnet: str) -> str:
    pool = await ipam.request_pool(m.RequestPoolRequest(AddressSpace="local", Pool=subnet))
    await ipam.request_address(m.RequestAddressRequest(PoolID=pool.PoolID, Address="", Options=GW))
    return pool.PoolID


async def _addr(ipam: IpamService, pool: str, address: str = "") -> str:
    return (await ipam.request_address(m.RequestAddressRequest(PoolID=pool, Address=address))).Address.split("/")[0]


async def _owners(etcd: FakeEtcd, pool_id: str) -> dict[str, str]:
    shared = EtcdSharedStore(etcd, PREFIX)  # type: ignore[arg-type]
    return {a.address: a.owner for a in await shared.allocations(pool_id) if a.kind != "gateway"}


async def test_the_plan_names_the_lost_hosts_addresses_and_pools_and_frees_exactly_them() -> None:
    etcd = FakeEtcd()
    i1, i3 = _ipam(etcd, H1), _ipam(etcd, H3)
    shared = await _net(i3, "10.5.0.0/24")  # host 3 made the pool: its gateway is held in host 3's name
    await _net(i1, "10.5.0.0/24")
    alone = await _net(i3, "10.6.0.0/24")  # host 3 is its only user
    mine = await _addr(i1, shared)
    lost = {await _addr(i3, shared), await _addr(i3, shared, "10.5.0.200")}
    await _addr(i3, alone)
    vni_key = K.vni_of(alone)
    etcd._put(vni_key, b"7", 0)
    etcd._put(K.vni(7), alone.encode(), 0)
    etcd._put(K.endpoint(H3, "e" * 64), b"{}", 0)  # a leaseless leftover

    plan = await plan_forget(etcd, K, H3)  # type: ignore[arg-type]
    assert not plan.alive and plan.tombstone is None and not plan.nothing_to_do
    by_pool = {p.pool_id: p for p in plan.pools}
    assert set(by_pool) == {shared, alone}
    assert not by_pool[shared].last_user and by_pool[alone].last_user and by_pool[alone].vni == 7
    assert "2 address(es) released" in by_pool[shared].line() and "VNI 7 freed" in by_pool[alone].line()
    assert plan.records == (K.endpoint(H3, "e" * 64),)
    assert any("tombstone" in line for line in plan.lines())
    assert len(lost) == 2

    await forget_host(etcd, K, H3)  # type: ignore[arg-type]
    assert await _owners(etcd, shared) == {mine: H1}
    assert json.loads(etcd.kvs[K.pool_users(shared)].value) == {H1: 1}
    assert K.pool(alone) not in etcd.kvs and vni_key not in etcd.kvs and K.vni(7) not in etcd.kvs
    assert not [k for k in etcd.kvs if k.startswith(K.allocs(alone))]
    assert K.endpoint(H3, "e" * 64) not in etcd.kvs
    assert json.loads(etcd.kvs[K.tombstone(H3)].value)["host"] == H3
    # the gateway stays (shared by the hosts still using the pool), and host 3's addresses are allocatable again
    gateway = K.alloc(shared, 0x0A050001, 4)
    assert json.loads(etcd.kvs[gateway].value) == {"kind": "gateway", "owner": H3}
    assert await _addr(i1, shared, "10.5.0.200") == "10.5.0.200"
    again = await plan_forget(etcd, K, H3)  # type: ignore[arg-type]
    assert again.nothing_to_do and again.lines() == []
    await forget_host(etcd, K, H3)  # type: ignore[arg-type]  (idempotent: nothing changes)
    assert await _owners(etcd, shared) == {mine: H1, "10.5.0.200": H1}


async def test_refused_while_the_hosts_lease_is_alive_and_nothing_is_written() -> None:
    etcd = FakeEtcd()
    i3 = _ipam(etcd, H3)
    pool = await _net(i3, "10.5.0.0/24")
    held = await _addr(i3, pool)
    lease = await etcd.grant_lease(10)
    etcd._put(K.host(H3), b'{"vtep": "192.0.2.3"}', lease)
    before = dict(etcd.kvs)
    assert (await plan_forget(etcd, K, H3)).alive  # type: ignore[arg-type]
    with pytest.raises(HostAlive, match=r"host 192\.0\.2\.3 is up"):
        await forget_host(etcd, K, H3)  # type: ignore[arg-type]
    assert etcd.kvs == before
    etcd.expire(lease)  # lost: its lease ran out
    await forget_host(etcd, K, H3)  # type: ignore[arg-type]
    assert held not in await _owners(etcd, pool)


async def test_a_host_coming_back_between_the_read_and_the_tombstone_makes_the_forget_fail() -> None:
    etcd = FakeEtcd()
    from pynetdrv.registry import forget

    real_get = etcd.get

    async def racing_get(key: bytes) -> object:
        kv = await real_get(key)
        if key == K.host(H3) and kv is None and K.tombstone(H3) not in etcd.kvs:
            etcd._put(K.host(H3), b"{}", 0)  # the host's record written right after this read
        return kv

    etcd.get = racing_get  # type: ignore[method-assign]
    with pytest.raises(forget.HostAlive, match="came back"):
        await forget._write_tombstone(etcd, K, H3)  # type: ignore[arg-type]
    assert K.tombstone(H3) not in etcd.kvs


async def test_more_addresses_than_one_transaction_holds_are_all_released() -> None:
    etcd = FakeEtcd()
    i1, i3 = _ipam(etcd, H1), _ipam(etcd, H3)
    pool = await _net(i1, "10.8.0.0/23")
    await _net(i3, "10.8.0.0/23")
    for _ in range(CHUNK + 20):
        await _addr(i3, pool)
    await forget_host(etcd, K, H3)  # type: ignore[arg-type]
    assert await _owners(etcd, pool) == {}


def _cluster_net(nid: str) -> NetworkRecord:
    return NetworkRecord(network_id=nid, bridge=f"br-{nid[:6]}", mac="02:00:00:00:00:01", mtu=None,
                         pools=("10.5.0.0/24",),
                         options={CLUSTER_OPTION: {"network": "local/10.5.0.0/24", "vni": 1}})


async def _local_with_a_cluster_endpoint() -> SQLiteStore:
    local = SQLiteStore(":memory:")
    await local.open()
    await local.put_network(_cluster_net("n" * 64), 0)
    await local.put_endpoint(EndpointRecord(endpoint_id="e" * 64, network_id="n" * 64, host_ifname="pnve-x",
                                                peer_ifname="pnvp-x", mac="02:00:00:00:00:02", address="10.5.0.2/24"))
    return local


async def test_a_forgotten_host_with_cluster_records_is_refused_naming_the_tombstone_and_the_way_out() -> None:
    etcd = FakeEtcd()
    etcd._put(K.tombstone(H3), json.dumps({"host": H3, "at": "2026-01-01T00:00:00Z"}).encode(), 0)
    local = await _local_with_a_cluster_endpoint()
    try:
        with pytest.raises(HostForgotten) as e:
            await check_tombstone(etcd, K, H3, local, rejoin=False, state="/var/lib/pynetdrv/state.db")  # type: ignore[arg-type]
        msg = str(e.value)
        assert "\n" not in msg and "forget-host" in msg and "2026-01-01T00:00:00Z" in msg
        assert "/t/tombstones/192.0.2.3" in msg and "--rejoin" in msg and "1 endpoint(s)" in msg
        assert K.tombstone(H3) in etcd.kvs and len(await local.list_endpoints()) == 1
        await check_tombstone(etcd, K, H3, local, rejoin=True)  # type: ignore[arg-type]
        assert await local.list_endpoints() == [] and await local.list_networks() == []
        assert K.tombstone(H3) not in etcd.kvs
    finally:
        await local.close()


async def test_a_forgotten_host_with_a_fresh_state_joins_and_its_tombstone_goes() -> None:
    etcd = FakeEtcd()
    etcd._put(K.tombstone(H3), b'{"host": "192.0.2.3"}', 0)
    local = SQLiteStore(":memory:")
    await local.open()
    try:
        await local.put_network(NetworkRecord(network_id="l" * 64, bridge="br-local", mac="02:00:00:00:00:03",
                                                mtu=None), 0)  # not a cluster one
        await check_tombstone(etcd, K, H3, local, rejoin=False)  # type: ignore[arg-type]
        assert K.tombstone(H3) not in etcd.kvs and len(await local.list_networks()) == 1
        etcd.down = True  # etcd away at start: the check is skipped (the daemon starts without etcd)
        await check_tombstone(etcd, K, H3, local, rejoin=False)  # type: ignore[arg-type]
    finally:
        await local.close()


async def test_a_running_host_that_is_forgotten_publishes_nothing_more() -> None:
    """Started while etcd was away (the start-up check skipped), or forgotten behind its back: when its
    lease comes back its records are not put again over the tombstone."""
    etcd = FakeEtcd()
    net = "local/10.5.0.0/24"
    mine = LocalRecords(HostEntry(H3, (net,)), {"e" * 64: EndpointEntry(net, "02:00:00:00:00:09", ("10.5.0.9",), H3)})

    async def records() -> LocalRecords:
        return mine

    async def changed() -> None:
        pass

    reg = Registry(etcd, K, H3, records, changed, ttl=2)  # type: ignore[arg-type]
    await reg.start()
    try:
        await _until(lambda: K.host(H3) in etcd.kvs, "published")
        etcd._put(K.tombstone(H3), b'{"host": "192.0.2.3"}', 0)
        etcd.expire(reg._lease.id)
        await _until(lambda: reg.forgotten, "the registry found the tombstone")
        await asyncio.sleep(1.5)  # a republish round or two later: still nothing
        assert K.host(H3) not in etcd.kvs and not [k for k in etcd.kvs if k.startswith(K.endpoints(H3))]
        with pytest.raises(EtcdError, match="declared gone for good"):
            await reg.put_endpoint("f" * 64, mine.endpoints["e" * 64])
    finally:
        await reg.stop()


async def _until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)
