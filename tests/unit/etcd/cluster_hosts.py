"""Simulated cluster hosts on a real etcd for the etcd tests: each a ClusterMember with its own
registry client, an in-memory SQLite, a fake VXLAN device and the real services (network driver,
IPAM); ``running_hosts`` starts several and stops them however the test ends; ``until`` waits for a
condition with a bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

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


async def until(cond: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_hosts(urls: list[str], prefix: bytes, addrs: list[str],
                        timeout: float = 5) -> AsyncIterator[list[Host]]:
    """One Host per (etcd URL, address), each with its own client, started; stopped on the way out."""
    clients = [EtcdClient.from_url(url, timeout=timeout) for url in urls]
    hosts = [Host(c, prefix, a) for c, a in zip(clients, addrs, strict=True)]
    started: list[Host] = []
    try:
        for h in hosts:
            await h.local.open()
            started.append(h)
            await h.member.start()
        yield hosts
    finally:
        for h in started:
            await h.member.stop()
            await h.local.close()
        for c in clients:
            await c.close()
