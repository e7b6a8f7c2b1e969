"""Shared by the ``pynetdrv check`` tests: a world whose state (real SQLite file, filled
through the real services), kernel (the FakeDataplane's links, seen as the kernel would show
them) and Docker (a DockerView, or a fake Engine API on a unix socket) agree until a test
breaks one of them.  The ``world`` and ``engine`` fixtures reach the tests through conftest."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.check import run_checks
from pynetdrv.check.command import CheckOptions, check
from pynetdrv.check.model import DockerEndpoint, DockerNetwork, DockerView, KernelLink
from pynetdrv.config import Config
from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane, FakeLink
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NET = "ab" * 32
EP1, EP2 = "c1" * 32, "c2" * 32
GW_OPTS = {"RequestAddressType": "com.docker.network.gateway"}


class FakeKernelView:
    """The FakeDataplane's links as the kernel would list them: bridges carry
    their gateway addresses, host veth ends their bridge as master."""

    def __init__(self, dp: FakeDataplane, extra: list[KernelLink] | None = None) -> None:
        self.dp = dp
        self.extra = extra or []
        #: name -> changes applied to the derived link (simulates kernel drift)
        self.drift: dict[str, dict[str, Any]] = {}

    async def links(self) -> list[KernelLink]:
        out = [KernelLink("lo", None, None, 65536, True)]
        for link in self.dp.links.values():
            out.append(self._derive(link))
        out += self.extra
        return [dataclasses.replace(k, **self.drift.get(k.name, {})) for k in out]

    @staticmethod
    def _derive(link: FakeLink) -> KernelLink:
        spec = link.spec
        kind = link.kind if link.kind in ("bridge", "veth") else str(link.kind)
        if isinstance(spec, BridgeSpec):
            return KernelLink(link.name, kind, link.alias, spec.mtu or 1500, True, addresses=spec.addresses)
        if isinstance(spec, VethSpec):
            master = spec.bridge if link.name == spec.host_name else None
            return KernelLink(link.name, kind, link.alias, spec.mtu or 1500, link.name == spec.host_name, master)
        return KernelLink(link.name, kind, link.alias, 1500, True)


@dataclasses.dataclass
class World:
    state: Path
    store: SQLiteStore
    ipam: IpamService
    net: NetworkService
    dp: FakeDataplane
    kernel: FakeKernelView
    pool_id: str = ""
    addresses: dict[str, str] = dataclasses.field(default_factory=dict)

    def opts(self) -> CheckOptions:
        return CheckOptions(state=self.state, instance="pynetdrv", docker_socket=None)

    async def endpoint(self, endpoint_id: str, address: str | None = None, join: bool = True) -> str:
        addr = (
            await self.ipam.request_address(im.RequestAddressRequest(PoolID=self.pool_id, Address=address or ""))
        ).Address
        await self.net.create_endpoint(nm.CreateEndpointRequest(
            NetworkID=NET, EndpointID=endpoint_id, Interface=nm.EndpointInterface(Address=addr)))
        if join:
            await self.net.join(
                nm.JoinRequest(NetworkID=NET, EndpointID=endpoint_id, SandboxKey=f"/run/netns/{endpoint_id[:4]}")
            )
        self.addresses[endpoint_id] = addr
        return addr

    def docker_view(self, **changes: Any) -> DockerView:
        """What Docker would say about this world."""
        eps = tuple(
            DockerEndpoint(f"cont{i}", f"c{i}", eid, addr) for i, (eid, addr) in enumerate(self.addresses.items())
        )
        dn = DockerNetwork(NET, "app", "pynetdrv", "pynetdrv", ("10.9.0.0/24",), (), eps)
        return DockerView((dataclasses.replace(dn, **changes),))

    async def findings(self, docker: DockerView | None = None) -> list[str]:
        result = await check(self.opts(), self.kernel)
        result.ctx.docker = docker
        return [f.line() for f in await run_checks(result.ctx)]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    state = tmp_path / "state.db"
    store = SQLiteStore(state)
    await store.open()
    dp = FakeDataplane()
    ipam = IpamService(store, Config(), dp.host_routes)
    w = World(state, store, ipam, NetworkService(store, dp, FakeFirewall(), FakeReserver()), dp, FakeKernelView(dp))
    pool = await ipam.request_pool(im.RequestPoolRequest(Pool="10.9.0.0/24"))
    w.pool_id = pool.PoolID
    gw = await ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID, Options=GW_OPTS))
    await w.net.create_network(nm.CreateNetworkRequest(
        NetworkID=NET, IPv4Data=[nm.IPAMData(Pool=pool.Pool, Gateway=gw.Address)],
        Options={"com.docker.network.generic": {"com.docker.network.driver.mtu": "1400"}}))
    await w.endpoint(EP1)
    await w.endpoint(EP2)
    try:
        yield w
    finally:
        await store.close()


def bridge(w: World) -> str:
    return next(n for n, link in w.dp.links.items() if link.kind == "bridge")


def _inspect(net_id: str) -> dict[str, Any]:
    """The shape of GET /networks/{id} (Engine API 1.41/1.45)."""
    return {
        "Name": "app", "Id": net_id, "Scope": "local", "Driver": "pynetdrv",
        "IPAM": {"Driver": "pynetdrv", "Options": {}, "Config": [
            {"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1", "AuxiliaryAddresses": {"router": "10.9.0.10"}}]},
        "Containers": {
            "f" * 64: {"Name": "web", "EndpointID": EP1, "MacAddress": "02:42:0a:09:00:02",
                       "IPv4Address": "10.9.0.2/24", "IPv6Address": ""},
            "ep-" + "1" * 64: {"Name": "lb", "EndpointID": "2" * 64, "IPv4Address": "10.9.0.3/24"},
        },
    }


class FakeEngine:
    """A fake Docker Engine API on a unix socket: GET /networks and /networks/{id}."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.networks: list[dict[str, Any]] = []
        self.asked: list[str] = []

    def serve(self, world: World, **changes: Any) -> None:
        """Serve what Docker would say about ``world``."""
        dn = world.docker_view(**changes).networks[0]
        self.networks = [{
            "Name": dn.name, "Id": dn.network_id, "Driver": dn.driver,
            "IPAM": {"Driver": dn.ipam_driver, "Config": [
                {"Subnet": s, "AuxiliaryAddresses": {f"a{i}": a for i, a in enumerate(dn.aux_addresses)}}
                for s in dn.subnets]},
            "Containers": {e.container_id: {"Name": e.container_name, "EndpointID": e.endpoint_id,
                                            "IPv4Address": e.ipv4, "IPv6Address": e.ipv6} for e in dn.endpoints},
        }]

    async def _list(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        return web.json_response([{**n, "Containers": {}} for n in self.networks])

    async def _inspect(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        for n in self.networks:
            if n["Id"] == request.match_info["nid"]:
                return web.json_response(n)
        return web.json_response({"message": "not found"}, status=404)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[FakeEngine]:
    fake = FakeEngine(tmp_path / "docker.sock")
    app = web.Application()
    app.router.add_get("/networks", fake._list)
    app.router.add_get("/networks/{nid}", fake._inspect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(fake.sock)).start()
    try:
        yield fake
    finally:
        await runner.cleanup()
