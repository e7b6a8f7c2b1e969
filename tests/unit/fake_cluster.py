"""Two simulated cluster hosts on ONE fake etcd (tests/fakes/etcd.py) for the unit tests of cluster
mode: each a NetworkService + IpamService on a ClusterStore with its own in-memory SQLite, its member
and registry, and a fake VXLAN device; ``fake_cluster`` starts them and stops them however the test
ends; ``until`` waits for a condition with a bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from driver_requests import create_req, ep_req

from pynetdrv.api import ipam_models as im
from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.registry.member import ClusterMember
from pynetdrv.registry.registry import Registry
from pynetdrv.store.cluster import ClusterPools, ClusterStore
from pynetdrv.store.etcd_shared import EtcdSharedStore
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.etcd import FakeEtcd
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver
from tests.fakes.vxlan import FakeGuard, FakeVxlan

GW = {im.REQUEST_ADDRESS_TYPE: im.GATEWAY_TYPE}
PREFIX = b"/t/"


class Host:
    def __init__(self, etcd: FakeEtcd, addr: str, local: SQLiteStore | None = None, fast_path: bool = True) -> None:
        """``local``: another host's open state (that host's daemon started again); ``fast_path``:
        False is ``serve --no-fast-path``."""
        self.addr = addr
        self.local = local or SQLiteStore(":memory:")
        self.pools = ClusterPools(EtcdSharedStore(etcd, PREFIX), addr)  # type: ignore[arg-type]
        self.store = ClusterStore(self.local, self.pools)
        self.vx = FakeVxlan()
        self.guard = FakeGuard()
        self.member = ClusterMember(
            self.vx, self.store, self.pools,
            lambda local, changed: Registry(etcd, self.pools.keys, addr, local, changed, ttl=3),  # type: ignore[arg-type]
            addr, 4789, self.guard, fast_path=fast_path)
        self.dp = FakeDataplane()
        self.net = NetworkService(self.store, self.dp, FakeFirewall(), FakeReserver(), self.member)
        self.ipam = IpamService(self.store, Config(), self.dp.host_routes)

    async def create(self, nid: str, subnet: str = "10.77.0.0/24", mtu: int | None = None, icc: bool = True) -> str:
        """``docker network create -d pynetdrv --ipam-driver pynetdrv --subnet SUBNET``; the pool id."""
        pool = await self.ipam.request_pool(im.RequestPoolRequest(AddressSpace="local", Pool=subnet))
        gw = await self.ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID, Address="", Options=GW))
        generic = {"com.docker.network.driver.mtu": str(mtu)} if mtu else {}
        if not icc:
            generic["com.docker.network.bridge.enable_icc"] = "false"
        await self.net.create_network(create_req(nid, generic=generic or None, v4=[(subnet, gw.Address)]))
        return pool.PoolID

    async def run(self, nid: str, eid: str, pool: str = "local/10.77.0.0/24") -> str:
        """A container on the network: its address, then its endpoint."""
        a = await self.ipam.request_address(im.RequestAddressRequest(PoolID=pool, Address=""))
        await self.net.create_endpoint(ep_req(eid, nid, a.Address))
        return a.Address.split("/")[0]

    def remote(self, nid: str) -> tuple[set[tuple[tuple[str, ...], str]], set[str]]:
        """(remote endpoints as (IPs, VTEP), peer VTEPs) on this host's device of ``nid``."""
        dev = self.vx.devices[nid]
        return {(e.ips, e.vtep) for e in dev.endpoints}, set(dev.hosts)


@asynccontextmanager
async def fake_cluster() -> AsyncIterator[tuple[FakeEtcd, Host, Host]]:
    etcd = FakeEtcd()
    h1, h2 = Host(etcd, "192.0.2.11"), Host(etcd, "192.0.2.12")
    for h in (h1, h2):
        await h.local.open()
        await h.member.start()
    try:
        yield etcd, h1, h2
    finally:
        etcd.down = False
        for h in (h1, h2):
            await h.member.stop()
            await h.store.close()


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
