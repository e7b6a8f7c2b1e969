"""ClusterPools on a real etcd, as two hosts (two clients, two IpamServices) see it: the same subnet
joins one pool with one gateway, an overlapping subnet is refused naming the cluster network, the last
host's ReleasePool frees it, racing hosts never hand out an address (v4 or v6) or a VNI twice."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from etcd_server import EtcdServer

from pynetdrv.api import ipam_models as m
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.config import Config
from pynetdrv.errors import Conflict, NotFound, Unavailable
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.cluster import ClusterPools
from pynetdrv.store.etcd_shared import EtcdSharedStore

GW = {m.REQUEST_ADDRESS_TYPE: m.GATEWAY_TYPE}


async def _no_routes() -> list[str]:
    return []


@pytest.fixture
async def hosts(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[tuple[ClusterPools, ClusterPools]]:
    url = f"etcd://{etcd_server.endpoint}"
    async with EtcdClient.from_url(url, timeout=5) as c1, EtcdClient.from_url(url, timeout=5) as c2:
        yield (ClusterPools(EtcdSharedStore(c1, etcd_prefix), "192.0.2.11"),
               ClusterPools(EtcdSharedStore(c2, etcd_prefix), "192.0.2.12"))


def _ipam(pools: ClusterPools) -> IpamService:
    return IpamService(pools, Config(), _no_routes)


async def _net(ipam: IpamService, subnet: str) -> tuple[str, str]:
    """What ``docker network create --subnet`` asks of IPAM: the pool, then its gateway."""
    pool = await ipam.request_pool(m.RequestPoolRequest(AddressSpace="local", Pool=subnet))
    gw = await ipam.request_address(m.RequestAddressRequest(PoolID=pool.PoolID, Address="", Options=GW))
    return pool.PoolID, gw.Address


async def test_same_subnet_on_two_hosts_is_one_pool_with_one_gateway(
        hosts: tuple[ClusterPools, ClusterPools]) -> None:
    h1, h2 = hosts
    i1, i2 = _ipam(h1), _ipam(h2)
    p1, gw1 = await _net(i1, "10.77.0.0/24")
    p2, gw2 = await _net(i2, "10.77.0.0/24")
    assert p1 == p2 and gw1 == gw2 == "10.77.0.1/24"
    assert await h1.users(p1) == {"192.0.2.11": 1, "192.0.2.12": 1}
    a1 = await i1.request_address(m.RequestAddressRequest(PoolID=p1, Address=""))
    a2 = await i2.request_address(m.RequestAddressRequest(PoolID=p2, Address=""))
    assert a1.Address != a2.Address
    # host 1 removes its network: gateway release and ReleasePool leave the pool to host 2
    await i1.release_address(m.ReleaseAddressRequest(PoolID=p1, Address="10.77.0.1"))
    await i1.release_pool(m.PoolRef(PoolID=p1))
    await i1.release_pool(m.PoolRef(PoolID=p1))  # idempotent: host 1 no longer uses it
    assert await h2.users(p1) == {"192.0.2.12": 1}
    kinds = {a.address: a.kind for a in await h2.allocations(p1)}
    assert kinds["10.77.0.1"] == "gateway" and a2.Address.split("/")[0] in kinds
    # the last user's release frees the pool, its addresses and its VNI
    vni = await h2.vni(p1)
    await i2.release_pool(m.PoolRef(PoolID=p2))
    assert await h2.get_pool(p1) is None and await h2.allocations(p1) == []
    assert await h2.client.get(h2.keys.vni(vni)) is None
    with pytest.raises(NotFound):
        await i2.request_address(m.RequestAddressRequest(PoolID=p2, Address=""))


async def test_overlapping_subnet_is_refused_naming_the_cluster_network(
        hosts: tuple[ClusterPools, ClusterPools]) -> None:
    h1, h2 = hosts
    p1, _ = await _net(_ipam(h1), "10.77.0.0/24")
    vni = await h1.vni(p1)
    before = (await h2.list_pools(), await h2.users(p1))
    for overlapping in ("10.77.0.0/23", "10.77.0.128/25"):
        with pytest.raises(Conflict) as e:
            await _ipam(h2).request_pool(m.RequestPoolRequest(AddressSpace="local", Pool=overlapping))
        assert str(e.value) == (f"subnet {overlapping} overlaps cluster network 10.77.0.0/24 "
                                f"(VNI {vni}; used by host 192.0.2.11)")
    with pytest.raises(Conflict, match=re.escape("ip-range is the whole subnet, not 10.77.0.0/25")):
        await _ipam(h2).request_pool(
            m.RequestPoolRequest(AddressSpace="local", Pool="10.77.0.0/24", SubPool="10.77.0.0/25"))
    assert (await h2.list_pools(), await h2.users(p1)) == before


async def test_racing_hosts_never_hand_out_an_address_twice_v4_and_v6(
        hosts: tuple[ClusterPools, ClusterPools]) -> None:
    h1, h2 = hosts
    i1, i2 = _ipam(h1), _ipam(h2)
    nets = await asyncio.gather(_net(i1, "10.78.0.0/26"), _net(i2, "10.78.0.0/26"),
                                _net(i1, "fd00:77::/64"), _net(i2, "fd00:77::/64"))
    assert nets[0] == nets[1] and nets[2] == nets[3]

    async def take(ipam: IpamService, pool: str, n: int) -> list[str]:
        got = []
        for _ in range(n):
            try:
                got.append((await ipam.request_address(m.RequestAddressRequest(PoolID=pool, Address=""))).Address)
            except Unavailable:
                break
        return got

    v4, v6 = nets[0][0], nets[2][0]
    results = await asyncio.gather(*(take(i, p, 40) for i in (i1, i2) for p in (v4, v6) for _ in range(2)))
    handed = [a for r in results for a in r]
    assert [a for a, k in Counter(handed).items() if k > 1] == []
    assert len([a for a in handed if "." in a]) == 62 - 1  # a /26 has 62 hosts, one is the gateway
    assert len([a for a in handed if ":" in a]) == 160


async def test_racing_hosts_get_one_vni_per_cluster_network(hosts: tuple[ClusterPools, ClusterPools]) -> None:
    h1, h2 = hosts
    subnets = [f"10.79.{i}.0/24" for i in range(6)]
    for s in subnets:
        await asyncio.gather(_net(_ipam(h1), s), _net(_ipam(h2), s))
    ids = [f"local/{s}" for s in subnets]
    got = await asyncio.gather(*(h.vni(p) for p in ids for h in (h1, h2)))
    per_net = [got[i:i + 2] for i in range(0, len(got), 2)]
    assert all(a == b for a, b in per_net)
    assert sorted(a for a, _ in per_net) == list(range(1, 7))
