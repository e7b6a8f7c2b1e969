"""``pynetdrv check`` findings: the state against itself, the kernel and the firewall
against the state, and Docker's view against the state (see check_world.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from check_world import EP1, EP2, NET, World, bridge

from pynetdrv.api import ipam_models as im
from pynetdrv.check import KERNEL_CHECKERS, run_checks
from pynetdrv.check.command import check, render, repair
from pynetdrv.check.model import DockerEndpoint, DockerNetwork, DockerView, KernelLink
from pynetdrv.dataplane.base import owner_alias
from tests.fakes.dataplane import FakeLink

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
        f"leak allocation {world.addresses[EP1].split('/')[0]}: "
        "dynamic allocation in pool 10.9.0.0/24 held by no endpoint"
    ]


async def test_foreign_link_with_bridge_name_is_not_claimed(world: World) -> None:
    name = bridge(world)
    world.dp.links[name] = FakeLink(name, "bridge", None)
    lines = await world.findings()
    assert (
        f"mismatch bridge {name}: a bridge with alias None, not 'pynetdrv:bridge:{NET}': "
        "not pynetdrv's, so it is left alone"
        in lines
    )
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
    assert (
        f"duplicate address {dup}: held by endpoint {EP1[:12]} and endpoint {EP2[:12]} on network {NET[:12]}" in lines
    )
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


async def test_firewall_checker_reports_drift_and_is_quiet_when_rules_agree() -> None:
    from pynetdrv.check.context import CheckContext
    from pynetdrv.check.kernel_checks import check_firewall
    from pynetdrv.check.model import StateSnapshot
    from pynetdrv.driver.external import firewall_state
    from pynetdrv.store.base import NetworkRecord
    from tests.fakes.firewall import FakeFirewall

    net = NetworkRecord(network_id="ab" * 32, bridge="pnbr-ababababab", mac="02:00:00:00:00:01", mtu=None,
                        pools=("10.9.0.0/24",))
    fw = FakeFirewall()
    ctx = CheckContext(state=StateSnapshot(networks=(net,)), instance="pynetdrv", firewall=fw)
    (finding,) = await check_firewall(ctx)
    assert (finding.kind, finding.subject, finding.repairable) == ("mismatch", "firewall", True)
    await fw.apply(firewall_state([net], []))
    assert await check_firewall(ctx) == []
    assert await check_firewall(CheckContext(state=ctx.state, instance="pynetdrv")) == []  # not compared
