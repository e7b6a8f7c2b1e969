"""The registry and the member on a real etcd: two hosts (two clients, two members, each with its own
SQLite and a fake VXLAN device) see each other's endpoints through etcd's watch; a lease revoked
behind a host's back is granted again and its records put again (compaction: over the fake, in
test_cluster_member)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from etcd_server import EtcdServer

from pynetdrv.api import ipam_models as im
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.registry.member import ClusterMember
from pynetdrv.registry.registry import Registry
from pynetdrv.store.cluster import ClusterPools, ClusterStore
from pynetdrv.store.etcd_shared import EtcdSharedStore
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver
from tests.fakes.vxlan import FakeVxlan
from tests.unit.driver_requests import create_req, ep_req

GW = {im.REQUEST_ADDRESS_TYPE: im.GATEWAY_TYPE}
POOL = "local/10.66.0.0/24"


class Host:
    def __init__(self, client: EtcdClient, prefix: bytes, addr: str) -> None:
        self.addr, self.client = addr, client
        self.local = SQLiteStore(":memory:")
        self.pools = ClusterPools(EtcdSharedStore(client, prefix), addr)
        self.store = ClusterStore(self.local, self.pools)
        self.vx = FakeVxlan()
        self.member = ClusterMember(self.vx, self.store, self.pools,
                                    lambda loc, ch: Registry(client, self.pools.keys, addr, loc, ch, ttl=3), addr, 4789)
        dp = FakeDataplane()
        self.net = NetworkService(self.store, dp, FakeFirewall(), FakeReserver(), self.member)
        self.ipam = IpamService(self.store, Config(), dp.host_routes)

    async def create_and_run(self, nid: str, eid: str) -> str:
        pool = await self.ipam.request_pool(im.RequestPoolRequest(AddressSpace="local", Pool="10.66.0.0/24"))
        gw = await self.ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID, Address="", Options=GW))
        await self.net.create_network(create_req(nid, v4=[("10.66.0.0/24", gw.Address)]))
        a = await self.ipam.request_address(im.RequestAddressRequest(PoolID=POOL, Address=""))
        await self.net.create_endpoint(ep_req(eid, nid, a.Address))
        return a.Address.split("/")[0]

    def sees(self, nid: str, ip: str | None, vtep: str | None) -> Callable[[], bool]:
        def check() -> bool:
            dev = self.vx.devices.get(nid)
            if dev is None:
                return False
            eps = {(e.ips, e.vtep) for e in dev.endpoints}
            return eps == ({((ip,), vtep)} if ip and vtep else set()) and dev.hosts == ({vtep} if vtep else set())
        return check


@pytest.fixture
async def hosts(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[tuple[Host, Host]]:
    url = f"etcd://{etcd_server.endpoint}"
    async with EtcdClient.from_url(url, timeout=5) as c1, EtcdClient.from_url(url, timeout=5) as c2:
        h1, h2 = Host(c1, etcd_prefix, "192.0.2.21"), Host(c2, etcd_prefix, "192.0.2.22")
        for h in (h1, h2):
            await h.local.open()
            await h.member.start()
        try:
            yield h1, h2
        finally:
            for h in (h1, h2):
                await h.member.stop()
                await h.local.close()


async def until(cond: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def test_each_host_sees_the_others_endpoint_through_etcd(hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    ip1, ip2 = await asyncio.gather(h1.create_and_run("1" * 64, "a" * 64), h2.create_and_run("2" * 64, "b" * 64))
    assert ip1 != ip2
    await until(h1.sees("1" * 64, ip2, h2.addr), "host 1 has host 2's endpoint")
    await until(h2.sees("2" * 64, ip1, h1.addr), "host 2 has host 1's endpoint")
    assert h1.vx.devices["1" * 64].vni == h2.vx.devices["2" * 64].vni


async def test_a_revoked_lease_is_granted_again_and_the_records_put_again(
        hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    ip1 = await h1.create_and_run("1" * 64, "a" * 64)
    await h2.create_and_run("2" * 64, "b" * 64)
    await until(h2.sees("2" * 64, ip1, h1.addr), "published")
    # an operator (or etcd) drops host 1's lease: its records go, then come back under a new lease
    await h2.client.revoke_lease(h1.member.registry._lease.id)
    await until(h2.sees("2" * 64, None, None), "host 1 gone with its lease")
    await until(h2.sees("2" * 64, ip1, h1.addr), "host 1 back under a new lease")
    assert h1.member.registry._lease.regrants >= 1
