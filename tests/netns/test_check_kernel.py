"""``pynetdrv check`` against the real kernel: the state is a real SQLite file
filled through the real services, the links are made by the real dataplane in
a throwaway namespace, then changed behind pynetdrv's back with plain netlink
calls; check must name each change and --repair must undo the repairable ones
without touching a foreign link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio
from netns_util import add_foreign_veth, get_link
from pyroute2 import AsyncIPRoute

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.check.command import CheckOptions, check, repair
from pynetdrv.check.kernel import NetlinkKernelView
from pynetdrv.config import Config
from pynetdrv.dataplane.base import Dataplane, owner_alias
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NET = "a7" * 32
EP1, EP2 = "b7" * 32, "c7" * 32
BRIDGE = "pnckbr0"
HOST1, HOST2 = "pnve-b7b7b7b7b7", "pnve-c7c7c7c7c7"


@dataclass
class Setup:
    opts: CheckOptions
    view: NetlinkKernelView
    nsname: str

    def dataplane(self) -> Dataplane:
        return NetlinkDataplane(netns=self.nsname)

    async def lines(self) -> list[str]:
        return [f.line() for f in (await check(self.opts, self.view)).findings]


@pytest_asyncio.fixture
async def setup(nsname: str, tmp_path: Path) -> AsyncIterator[Setup]:
    """A network (MTU 1400, gateway 10.224.0.1/24) with two joined endpoints."""
    state = tmp_path / "state.db"
    store = SQLiteStore(state)
    await store.open()
    dp = NetlinkDataplane(netns=nsname)
    try:
        ipam = IpamService(store, Config(), dp.host_routes)
        svc = NetworkService(store, dp, FakeFirewall(), FakeReserver())
        pool = await ipam.request_pool(im.RequestPoolRequest(Pool="10.224.0.0/24"))
        gw = await ipam.request_address(im.RequestAddressRequest(
            PoolID=pool.PoolID, Options={"RequestAddressType": "com.docker.network.gateway"}))
        await svc.create_network(nm.CreateNetworkRequest(
            NetworkID=NET, IPv4Data=[nm.IPAMData(Pool=pool.Pool, Gateway=gw.Address)],
            Options={"com.docker.network.generic": {"com.docker.network.bridge.name": BRIDGE,
                                                    "com.docker.network.driver.mtu": "1400"}}))
        for ep in (EP1, EP2):
            addr = await ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID))
            await svc.create_endpoint(nm.CreateEndpointRequest(
                NetworkID=NET, EndpointID=ep, Interface=nm.EndpointInterface(Address=addr.Address)))
            await svc.join(nm.JoinRequest(NetworkID=NET, EndpointID=ep, SandboxKey=f"/run/netns/{ep[:6]}"))
    finally:
        await dp.close()
        await store.close()
    yield Setup(CheckOptions(state=state, instance="pynetdrv", docker_socket=None, netns=nsname),
                NetlinkKernelView(nsname), nsname)


async def _index(kernel: AsyncIPRoute, name: str) -> int:
    link = await get_link(kernel, name)
    assert link is not None, f"{name} is missing"
    return int(link["index"])


async def test_what_the_dataplane_built_agrees(setup: Setup) -> None:
    result = await check(setup.opts, setup.view)
    assert result.findings == []
    names = {link.name for link in result.ctx.links or []}
    assert {BRIDGE, HOST1, HOST2} <= names


async def test_kernel_drift_is_named_then_repaired(setup: Setup, kernel: AsyncIPRoute) -> None:
    stray = "d7" * 32
    # Behind pynetdrv's back: a port detached and its MTU changed, the other
    # port down, the gateway address gone, an orphan veth with our alias, a
    # link of another instance and a foreign link.
    await kernel.link("set", index=await _index(kernel, HOST1), master=0, mtu=1500)
    await kernel.link("set", index=await _index(kernel, HOST2), state="down")
    await kernel.addr("del", index=await _index(kernel, BRIDGE), address="10.224.0.1", prefixlen=24)
    await add_foreign_veth(kernel, "pnve-orphan", "pnvc-orphan")
    await kernel.link("set", index=await _index(kernel, "pnve-orphan"), ifalias=owner_alias("veth", stray))
    await add_foreign_veth(kernel, "pnve-other", "pnvc-other")
    await kernel.link("set", index=await _index(kernel, "pnve-other"), ifalias=owner_alias("veth", stray, "pynetdrv-x"))
    await add_foreign_veth(kernel, "userveth0", "userveth1")

    lines = await setup.lines()
    assert sorted(lines) == sorted([
        f"mismatch veth {HOST1}: attached to no bridge, should be on {BRIDGE}",
        f"mismatch veth {HOST1}: MTU 1500, the network has 1400",
        f"mismatch veth {HOST2}: is down",
        f"missing address 10.224.0.1/24: gateway of network {NET[:12]} is not on {BRIDGE}",
        f"orphan link pnve-orphan: veth of endpoint {stray[:12]}, which the state does not know",
    ])

    before, done, after = await repair(setup.opts, setup.dataplane, setup.view)
    assert len(before.findings) == 5 and all(f.repairable for f in before.findings)
    assert sorted(done) == sorted(f"fixed: {line}" for line in lines)
    assert after.findings == [], [f.line() for f in after.findings]
    assert await get_link(kernel, "pnve-orphan") is None and await get_link(kernel, "pnvc-orphan") is None
    for name in ("pnve-other", "userveth0", "userveth1"):
        assert await get_link(kernel, name) is not None, f"repair touched {name}, which is not ours"
    host1 = await get_link(kernel, HOST1)
    assert host1.get("master") == await _index(kernel, BRIDGE) and host1.get("mtu") == 1400


async def test_host_reboot_bridge_and_veths_gone(setup: Setup, kernel: AsyncIPRoute) -> None:
    """After a reboot nothing of ours exists: the bridge is missing, and the
    joined endpoints are dead (their containers died with the host)."""
    for name in (HOST1, HOST2, BRIDGE):
        await kernel.link("del", index=await _index(kernel, name))
    lines = await setup.lines()
    assert f"missing bridge {BRIDGE}: network {NET[:12]} has no bridge" in lines
    assert sum(line.startswith(("missing veth pnve-b7", "missing veth pnve-c7")) for line in lines) == 2
    _, done, after = await repair(setup.opts, setup.dataplane, setup.view)
    assert f"forgot dead endpoint {EP1[:12]} (its veth died with its container)" in done
    bridge = await get_link(kernel, BRIDGE)
    assert bridge is not None and bridge.get("mtu") == 1400
    # Their addresses stay allocated: releasing them is Docker's call (it
    # releases stale endpoints' addresses itself when it restarts them).
    assert sorted(f.kind for f in after.findings) == ["leak", "leak"]
    assert not any(f.repairable for f in after.findings)


async def test_foreign_link_under_our_bridge_name_is_not_repaired(setup: Setup, kernel: AsyncIPRoute) -> None:
    for name in (HOST1, HOST2, BRIDGE):
        await kernel.link("del", index=await _index(kernel, name))
    await kernel.link("add", ifname=BRIDGE, kind="bridge")  # the user's now
    lines = await setup.lines()
    assert any(line.startswith(f"mismatch bridge {BRIDGE}: a bridge with alias None") for line in lines), lines
    _, _, after = await repair(setup.opts, setup.dataplane, setup.view)
    assert (await get_link(kernel, BRIDGE)).get("ifalias") in (None, "")
    assert any(f.subject == f"bridge {BRIDGE}" and not f.repairable for f in after.findings)
