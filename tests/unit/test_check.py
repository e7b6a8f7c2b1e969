"""``pynetdrv check``: the state (real SQLite file, filled through the real
services), the kernel (the FakeDataplane's links, seen as the kernel would
show them) and Docker (a DockerView, or a fake Engine API on a unix socket)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.check import KERNEL_CHECKERS, run_checks
from pynetdrv.check.command import CheckOptions, RepairRefused, check, render, repair
from pynetdrv.check.docker_view import DockerUnreachable, read_docker_view
from pynetdrv.check.model import DockerEndpoint, DockerNetwork, DockerView, KernelLink
from pynetdrv.check.state import read_state
from pynetdrv.config import Config
from pynetdrv.dataplane.base import BridgeSpec, VethSpec, owner_alias
from pynetdrv.dataplane.fake import FakeDataplane, FakeLink
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.lock import StateLock
from pynetdrv.store.base import EndpointRecord
from pynetdrv.store.sqlite import SQLiteStore

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
        addr = (await self.ipam.request_address(im.RequestAddressRequest(PoolID=self.pool_id, Address=address or ""))).Address
        await self.net.create_endpoint(nm.CreateEndpointRequest(
            NetworkID=NET, EndpointID=endpoint_id, Interface=nm.EndpointInterface(Address=addr)))
        if join:
            await self.net.join(nm.JoinRequest(NetworkID=NET, EndpointID=endpoint_id, SandboxKey=f"/run/netns/{endpoint_id[:4]}"))
        self.addresses[endpoint_id] = addr
        return addr

    def docker_view(self, **changes: Any) -> DockerView:
        """What Docker would say about this world."""
        eps = tuple(DockerEndpoint(f"cont{i}", f"c{i}", eid, addr) for i, (eid, addr) in enumerate(self.addresses.items()))
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
    w = World(state, store, ipam, NetworkService(store, dp), dp, FakeKernelView(dp))
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


# --- agreement ------------------------------------------------------------------


async def test_consistent_world_has_no_finding(world: World) -> None:
    assert await world.findings() == []
    assert await world.findings(world.docker_view()) == []
    result = await check(world.opts(), world.kernel)
    assert result.clean
    assert render(result)[-1].startswith("pynetdrv check: all agree (1 network(s), 2 endpoint(s), 1 pool(s)")


# --- kernel ----------------------------------------------------------------------


async def test_missing_bridge_is_reported_and_repaired(world: World) -> None:
    name = bridge(world)
    del world.dp.links[name]
    lines = await world.findings()
    assert f"missing bridge {name}: network {NET[:12]} has no bridge" in lines
    before, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert any(f.subject == f"bridge {name}" and f.repairable for f in before.findings)
    assert f"fixed: missing bridge {name}: network {NET[:12]} has no bridge" in done
    assert after.clean, [f.line() for f in after.findings]
    assert name in world.dp.links


async def test_orphan_link_with_our_alias_only(world: World) -> None:
    stray = "f0" * 32
    world.dp.links["pnve-stray"] = FakeLink("pnve-stray", "veth", owner_alias("veth", stray))
    world.dp.links["pnbr-other"] = FakeLink("pnbr-other", "bridge", owner_alias("bridge", stray, "pynetdrv-it"))
    world.dp.add_foreign("pnve-foreign", "veth")
    lines = await world.findings()
    assert lines == [f"orphan link pnve-stray: veth of endpoint {stray[:12]}, which the state does not know"]
    _, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert done == [lines[0].join(("fixed: ", ""))]
    assert after.clean
    # Another instance's link and a foreign one are untouched.
    assert {"pnbr-other", "pnve-foreign"} <= set(world.dp.links)


async def test_veth_drift_wrong_master_mtu_down(world: World) -> None:
    host = next(n for n, link in world.dp.links.items() if n.startswith("pnve-"))
    world.kernel.drift[host] = {"master": None, "mtu": 1500, "up": False}
    lines = await world.findings()
    assert sorted(lines) == sorted([
        f"mismatch veth {host}: attached to no bridge, should be on {bridge(world)}",
        f"mismatch veth {host}: is down",
        f"mismatch veth {host}: MTU 1500, the network has 1400",
    ])


async def test_bridge_drift_addresses_and_mtu(world: World) -> None:
    name = bridge(world)
    world.kernel.drift[name] = {"addresses": ("10.9.0.200/24",), "mtu": 9000}
    lines = await world.findings()
    assert f"missing address 10.9.0.1/24: gateway of network {NET[:12]} is not on {name}" in lines
    assert f"mismatch bridge {name}: carries 10.9.0.200/24, which is no gateway of the network" in lines
    assert f"mismatch bridge {name}: MTU 9000, the network has 1400" in lines


async def test_missing_veth_joined_vs_not_joined(world: World) -> None:
    await world.endpoint("e3" * 32, join=False)
    gone = {n for n in world.dp.links if n.startswith(("pnve-c1", "pnvc-c1", "pnve-e3", "pnvc-e3"))}
    for n in gone:
        del world.dp.links[n]
    lines = await world.findings()
    assert any(line.startswith("missing veth pnve-c1c1c1c1c1: endpoint c1c1c1c1c1c1: its container had joined")
               for line in lines), lines
    assert any(line.startswith("missing veth pnve-e3e3e3e3e3:") and "recreates" in line for line in lines), lines
    _, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert f"forgot dead endpoint {EP1[:12]} (its veth died with its container)" in done
    assert "pnve-e3e3e3e3e3" in world.dp.links
    # The dead endpoint's address is still allocated: repair never releases addresses.
    assert [f.line() for f in after.findings] == [
        f"leak allocation {world.addresses[EP1].split('/')[0]}: dynamic allocation in pool 10.9.0.0/24 held by no endpoint"]


async def test_foreign_link_with_bridge_name_is_not_claimed(world: World) -> None:
    name = bridge(world)
    world.dp.links[name] = FakeLink(name, "bridge", None)
    lines = await world.findings()
    assert f"mismatch bridge {name}: a bridge with alias None, not 'pynetdrv:bridge:{NET}': not pynetdrv's, so it is left alone" in lines
    assert not any(f.repairable for f in (await check(world.opts(), world.kernel)).findings
                   if f.subject == f"bridge {name}")


async def test_kernel_checkers_are_a_list_a_firewall_section_can_join(world: World) -> None:
    async def firewall(ctx: Any) -> list[Any]:
        from pynetdrv.check.model import Finding
        return [Finding("missing", "rule PYNETDRV-FORWARD", f"for {len(ctx.state.networks)} network(s)")]

    result = await check(world.opts(), world.kernel)
    assert [f.line() for f in await run_checks(result.ctx, [*KERNEL_CHECKERS, firewall])] == [
        "missing rule PYNETDRV-FORWARD: for 1 network(s)"]


# --- state -----------------------------------------------------------------------


async def test_leaked_dynamic_allocation(world: World) -> None:
    addr = await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))
    ip = addr.Address.split("/")[0]
    assert await world.findings() == [
        f"leak allocation {ip}: dynamic allocation in pool 10.9.0.0/24 held by no endpoint"]


async def test_endpoint_without_allocation(world: World) -> None:
    ip = world.addresses[EP2].split("/")[0]
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=ip))
    assert await world.findings() == [
        (f"missing allocation {ip}: endpoint {EP2[:12]} uses it but pool 10.9.0.0/24 has it free "
        "(it could be handed out again)")]


async def test_duplicate_and_outside_addresses(world: World) -> None:
    ep1 = await world.store.get_endpoint(EP1)
    assert ep1 is not None
    await world.store.put_endpoint(dataclasses.replace(ep1, address=world.addresses[EP2]))
    dup = world.addresses[EP2].split("/")[0]
    lines = await world.findings()
    assert f"duplicate address {dup}: held by endpoint {EP1[:12]} and endpoint {EP2[:12]} on network {NET[:12]}" in lines
    await world.store.put_endpoint(dataclasses.replace(ep1, address="10.77.0.5/24"))
    lines = await world.findings()
    assert (f"mismatch endpoint {EP1[:12]}: address 10.77.0.5/24 is outside the pools of network {NET[:12]} "
            "(10.9.0.0/24)") in lines


async def test_endpoint_holding_the_gateway(world: World) -> None:
    ep1 = await world.store.get_endpoint(EP1)
    assert ep1 is not None
    await world.store.put_endpoint(dataclasses.replace(ep1, address="10.9.0.1/24"))
    lines = await world.findings()
    assert f"duplicate address 10.9.0.1: held by the gateway and endpoint {EP1[:12]} on network {NET[:12]}" in lines
    assert f"duplicate address 10.9.0.1: endpoint {EP1[:12]} uses the gateway allocation of pool 10.9.0.0/24" in lines


async def test_static_allocation_needs_docker_to_tell_aux_from_leak(world: World) -> None:
    await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id, Address="10.9.0.50"))
    result = await check(world.opts(), world.kernel)
    assert result.clean
    assert any("10.9.0.50" in n and "--aux-address or leak" in n for n in result.ctx.notes)
    assert await world.findings(world.docker_view(aux_addresses=("10.9.0.50",))) == []
    assert await world.findings(world.docker_view()) == [
        "leak allocation 10.9.0.50: static allocation in pool 10.9.0.0/24 held by no endpoint and no --aux-address"]


async def test_pool_of_no_network(world: World) -> None:
    await world.ipam.request_pool(im.RequestPoolRequest(Pool="10.8.0.0/24"))
    result = await check(world.opts(), world.kernel)
    assert result.clean and any(n.startswith("pool 10.8.0.0/24: no pynetdrv network uses it") for n in result.ctx.notes)
    assert await world.findings(world.docker_view()) == [
        "leak pool 10.8.0.0/24: no Docker network uses it (0 allocation(s) held)"]
    # An IPAM-only network (Docker's bridge driver with our IPAM) uses it.
    ipam_only = DockerNetwork("ee" * 32, "ipamonly", "bridge", "pynetdrv", ("10.8.0.0/24",), (),
                              (DockerEndpoint("x", "x", "e" * 64, "10.8.0.7/24"),))
    view = DockerView((*world.docker_view().networks, ipam_only))
    assert await world.findings(view) == [
        "missing allocation 10.8.0.7: a container on 'ipamonly' uses it but pool 10.8.0.0/24 has it free"]


# --- Docker ----------------------------------------------------------------------


async def test_docker_disagreements(world: World) -> None:
    view = world.docker_view()
    dn = view.networks[0]
    eps = list(dn.endpoints)
    ghost = DockerEndpoint("cont9", "ghost", "99" * 32, "10.9.0.99/24")
    eps[1] = dataclasses.replace(eps[1], ipv4="10.9.0.77/24")
    eps[0], dropped = ghost, eps[0]
    other = DockerNetwork("77" * 32, "unknown", "pynetdrv", "pynetdrv", ("10.7.0.0/24",))
    lines = await world.findings(DockerView((dataclasses.replace(dn, endpoints=tuple(eps)), other)))
    assert sorted(lines) == sorted([
        f"missing endpoint {'99' * 6}: Docker has it for container ghost on 'app', the state does not",
        (f"mismatch endpoint {EP2[:12]}: IPv4 address 10.9.0.77/24 in Docker (container c1), "
        f"{world.addresses[EP2]} in the state"),
        (f"orphan endpoint {dropped.endpoint_id[:12]}: in the state on 'app' (veth pnve-c1c1c1c1c1, "
        f"address {world.addresses[EP1]}), unknown to Docker"),
        f"missing network {'77' * 6}: Docker has network 'unknown' on driver pynetdrv, the state does not",
        "missing pool 10.7.0.0/24: Docker network 'unknown' uses it with IPAM pynetdrv, the state has no such pool",
    ])
    assert await world.findings(DockerView(())) == [
        f"orphan network {NET[:12]}: in the state (bridge {bridge(world)}), unknown to Docker"]


async def test_docker_duplicate_among_containers(world: World) -> None:
    view = world.docker_view()
    dn = view.networks[0]
    twin = DockerEndpoint("contX", "twin", "88" * 32, dn.endpoints[0].ipv4)
    lines = await world.findings(DockerView((dataclasses.replace(dn, endpoints=(*dn.endpoints, twin)),)))
    ip = dn.endpoints[0].ipv4.split("/")[0]
    assert f"duplicate address {ip}: containers c0, twin on Docker network 'app'" in lines


# --- reading the views -------------------------------------------------------------


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


async def test_docker_view_over_a_unix_socket(engine: FakeEngine) -> None:
    engine.networks = [
        _inspect(NET),
        {"Name": "bridge", "Id": "b" * 64, "Driver": "bridge", "IPAM": {"Driver": "default"}, "Containers": {}},
    ]
    view = await read_docker_view("pynetdrv", engine.sock)
    assert engine.asked == ["/networks", f"/networks/{NET}"]  # the bridge network is not inspected
    assert view == DockerView((DockerNetwork(
        NET, "app", "pynetdrv", "pynetdrv", ("10.9.0.0/24",), ("10.9.0.10",),
        (DockerEndpoint("f" * 64, "web", EP1, "10.9.0.2/24", ""),)),))


async def test_repair_with_dockers_view_releases_forgets_and_reserves(world: World, engine: FakeEngine) -> None:
    """What Docker's lost calls leave (its plugin client retries a refused call with an empty
    body, which pynetdrv must refuse): a ReleaseAddress lost -> a leaked allocation; a
    DeleteEndpoint lost -> an endpoint and veth Docker no longer knows."""
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    leaked = (await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))).Address
    await world.endpoint("e4" * 32)  # becomes the orphan: Docker is told nothing of it
    orphan_addr = world.addresses.pop("e4" * 32)
    ip2 = world.addresses[EP2].split("/")[0]
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=ip2))
    engine.serve(world)

    before, done, after = await repair(opts, lambda: world.dp, world.kernel)
    assert sorted(f.line() for f in before.findings) == sorted([
        (f"leak allocation {leaked.split('/')[0]}: dynamic allocation in pool 10.9.0.0/24 held by no endpoint "
        "and no --aux-address"),
        (f"orphan endpoint {'e4' * 6}: in the state on 'app' (veth pnve-e4e4e4e4e4, address {orphan_addr}), "
        "unknown to Docker"),
        (f"missing allocation {ip2}: endpoint {EP2[:12]} uses it but pool 10.9.0.0/24 has it free "
        "(it could be handed out again)"),
    ])
    assert all(f.repairable for f in before.findings)
    assert f"forgot endpoint {'e4' * 6} unknown to Docker, removed veth pnve-e4e4e4e4e4" in done
    assert f"released {leaked.split('/')[0]} in pool {world.pool_id}" in done
    assert f"released {orphan_addr.split('/')[0]} in pool {world.pool_id}" in done
    assert f"reserved {ip2} in pool {world.pool_id} again" in done
    assert after.clean, [f.line() for f in after.findings]
    assert "pnve-e4e4e4e4e4" not in world.dp.links


async def test_without_dockers_view_addresses_are_never_released(world: World) -> None:
    await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))
    before, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert [f.kind for f in before.findings] == ["leak"] and not before.findings[0].repairable
    assert done == [] and after.findings == before.findings


async def test_pool_of_no_docker_network_is_deleted_by_repair(world: World, engine: FakeEngine) -> None:
    await world.ipam.request_pool(im.RequestPoolRequest(Pool="10.8.0.0/24"))
    engine.serve(world)
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    _, done, after = await repair(opts, lambda: world.dp, world.kernel)
    assert done[0] == "deleted pool local/10.8.0.0/24" and after.clean


async def test_docker_unreachable_is_a_note_not_a_failure(world: World, tmp_path: Path) -> None:
    with pytest.raises(DockerUnreachable, match="no Docker socket"):
        await read_docker_view("pynetdrv", tmp_path / "none.sock")
    dead = tmp_path / "dead.sock"
    import socket as so
    s = so.socket(so.AF_UNIX)
    s.bind(str(dead))
    s.close()  # a socket file nobody listens on
    opts = dataclasses.replace(world.opts(), docker_socket=dead)
    result = await check(opts, world.kernel)
    assert result.clean and result.ctx.docker is None
    assert any(n.startswith(f"Docker not compared: Docker at {dead} did not answer") for n in result.ctx.notes)


async def test_read_state_is_read_only_and_does_not_wait_for_the_writer(world: World) -> None:
    before = world.state.read_bytes()
    writer = sqlite3.connect(world.state, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a write
        snap = read_state(world.state)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert {e.endpoint_id for e in snap.endpoints} == {EP1, EP2}
    assert len(snap.allocations[world.pool_id]) == 3
    assert world.state.read_bytes() == before
    with pytest.raises(sqlite3.OperationalError):
        conn = sqlite3.connect(f"{world.state.as_uri()}?mode=ro", uri=True)
        conn.execute("DELETE FROM endpoints")  # what mode=ro refuses, so read_state cannot write


async def test_repair_refused_while_the_daemon_holds_the_lock(world: World) -> None:
    name = bridge(world)
    del world.dp.links[name]
    calls = len(world.dp.calls)
    held = StateLock(world.state)
    held.acquire()
    try:
        with pytest.raises(RepairRefused, match="already running"):
            await repair(world.opts(), lambda: world.dp, world.kernel)
    finally:
        held.release()
    assert len(world.dp.calls) == calls and name not in world.dp.links


async def test_repair_with_nothing_repairable_changes_nothing(world: World) -> None:
    await world.ipam.request_address(im.RequestAddressRequest(PoolID=world.pool_id))  # a leak: not repairable
    calls = len(world.dp.calls)
    before, done, after = await repair(world.opts(), lambda: world.dp, world.kernel)
    assert done == [] and not before.clean and after is before
    assert len(world.dp.calls) == calls


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pynetdrv", "check", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_exit_codes(tmp_path: Path) -> None:
    missing = _cli("--state", str(tmp_path / "none.db"), "--no-docker")
    assert missing.returncode == 2 and "no state file" in missing.stderr
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    corrupt = _cli("--state", str(bad), "--no-docker")
    assert corrupt.returncode == 2 and f"cannot read state {bad}" in corrupt.stderr
    assert bad.read_bytes() == b"not sqlite at all" * 100


async def test_cli_on_a_state_with_problems(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    store = SQLiteStore(state)
    await store.open()
    try:
        await store.put_network(dataclasses.replace(
            (await _record_network()), bridge="pnbr-unittest"))
        await store.put_endpoint(EndpointRecord(EP1, NET, "pnve-unittest", "pnvc-unittest", "02:00:00:00:00:01"))
    finally:
        await store.close()
    # A socket name no daemon uses: no link on this host carries its alias.
    sock = tmp_path / f"pnunit-{tmp_path.name[-6:]}.sock"
    # The firewall is compared over the Firewall seam above and in the netns tests.
    out = _cli("--state", str(state), "--socket", str(sock), "--no-docker", "--no-firewall")
    assert out.returncode == 1, out
    lines = out.stdout.splitlines()
    assert f"missing bridge pnbr-unittest: network {NET[:12]} has no bridge" in lines
    assert any(line.startswith("missing veth pnve-unittest:") for line in lines)
    assert "note: Docker not compared (--no-docker)" in lines
    # (The host may hold unmarked pnve- pairs of others: count only ours.)
    assert " 2 repairable with --repair" in lines[-1], lines[-1]


async def _record_network() -> Any:
    from pynetdrv.store.base import NetworkRecord
    return NetworkRecord(NET, "x", "02:00:00:00:00:02", None)


async def test_unmarked_veth_named_like_ours_is_noted_not_repaired(world: World) -> None:
    """The kernel cannot set an alias when it creates a veth pair: a SIGKILL between the two
    leaves an unmarked pair (seen in the churn fault test on Docker 26.1). Any instance may
    own it, so it is a note, and --repair leaves it."""
    world.kernel.extra = [KernelLink("pnve-70cfe9d270", "veth", None, 1500, False),
                          KernelLink("pnvc-70cfe9d270", "veth", None, 1500, False),
                          KernelLink("pnve-notours", "veth", None, 1500, False),  # not our naming
                          KernelLink("pnve-abcdef0123", "bridge", None, 1500, False)]  # not a veth
    result = await check(world.opts(), world.kernel)
    assert result.clean
    noted = [n.split()[1] for n in result.ctx.notes if "named like a pynetdrv veth" in n]
    assert noted == ["pnve-70cfe9d270", "pnvc-70cfe9d270"]


async def test_lost_delete_endpoint_with_delivered_release(world: World, engine: FakeEngine) -> None:
    """Docker's DeleteEndpoint lost, its ReleaseAddress delivered, the address then handed to a
    new container: an orphan endpoint, a free address it still claims, a state duplicate. All
    three go once --repair forgets the endpoint Docker does not know (seen on Docker 26.1)."""
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    addr = world.addresses.pop(EP1)
    ip = addr.split("/")[0]
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=ip))
    await world.endpoint("e5" * 32, address=ip)
    engine.serve(world)
    before, _, after = await repair(opts, lambda: world.dp, world.kernel)
    lines = sorted(f.line() for f in before.findings)
    assert lines == sorted([
        f"orphan endpoint {EP1[:12]}: in the state on 'app' (veth pnve-c1c1c1c1c1, address {addr}), unknown to Docker",
        f"duplicate address {ip}: held by endpoint {EP1[:12]} and endpoint {'e5' * 6} on network {NET[:12]}",
    ]), lines
    assert all(f.repairable for f in before.findings)
    assert after.clean, [f.line() for f in after.findings]


async def test_missing_allocation_of_an_endpoint_docker_forgot(world: World, engine: FakeEngine) -> None:
    opts = dataclasses.replace(world.opts(), docker_socket=engine.sock)
    addr = world.addresses.pop(EP1)
    await world.ipam.release_address(im.ReleaseAddressRequest(PoolID=world.pool_id, Address=addr.split("/")[0]))
    engine.serve(world)
    before, done, after = await repair(opts, lambda: world.dp, world.kernel)
    assert sorted(f.kind for f in before.findings) == ["missing", "orphan"]
    assert all(f.repairable for f in before.findings)
    assert f"forgot endpoint {EP1[:12]} unknown to Docker, removed veth pnve-c1c1c1c1c1" in done
    assert after.clean


async def test_cli_repair_refuses_while_the_daemon_runs(world: World, tmp_path: Path) -> None:
    held = StateLock(world.state)
    held.acquire()
    try:
        out = _cli("--state", str(world.state), "--socket", str(tmp_path / "pnunit-x.sock"), "--no-docker", "--repair")
    finally:
        held.release()
    assert out.returncode == 2, out
    assert "Repair only runs while the daemon is stopped" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr


async def test_firewall_checker_reports_drift_and_is_quiet_when_rules_agree() -> None:
    from pynetdrv.check.context import CheckContext
    from pynetdrv.check.kernel_checks import check_firewall
    from pynetdrv.check.model import StateSnapshot
    from pynetdrv.driver.external import firewall_state
    from pynetdrv.firewall.fake import FakeFirewall
    from pynetdrv.store.base import NetworkRecord

    net = NetworkRecord(network_id="ab" * 32, bridge="pnbr-ababababab", mac="02:00:00:00:00:01", mtu=None,
                        pools=("10.9.0.0/24",))
    fw = FakeFirewall()
    ctx = CheckContext(state=StateSnapshot(networks=(net,)), instance="pynetdrv", firewall=fw)
    (finding,) = await check_firewall(ctx)
    assert (finding.kind, finding.subject, finding.repairable) == ("mismatch", "firewall", True)
    await fw.apply(firewall_state([net], []))
    assert await check_firewall(ctx) == []
    assert await check_firewall(CheckContext(state=ctx.state, instance="pynetdrv")) == []  # not compared
