"""IptablesFirewall inside the test namespace, read back with iptables-save:
the kernel holds exactly the rendered rules, changes are idempotent, the
built-in chains keep their policy and other rules, and everything goes when
the last network does.  The host namespace's firewall is only ever read."""

from __future__ import annotations

import subprocess

import pytest
from netns_util import in_netns
from pyroute2 import AsyncIPRoute

from pynetdrv.dataplane.sysctl import write_sysctls
from pynetdrv.firewall.base import FirewallError
from pynetdrv.firewall.iptables import IptablesFirewall
from pynetdrv.firewall.model import FirewallState, NetworkRules, PortRule

STATE = FirewallState(
    networks=(NetworkRules("pndbr0", ("10.251.0.0/24", "fd00:251::/64")),
              NetworkRules("pndbr1", ("10.251.1.0/24",), masquerade=False, icc=False),
              NetworkRules("pndbr2", ("10.251.2.0/24",), internal=True)),
    ports=(PortRule("tcp", "0.0.0.0", 8080, "10.251.0.2", 80, "pndbr0"),
           PortRule("udp", "127.0.0.1", 5353, "10.251.0.2", 53, "pndbr0"),
           PortRule("sctp", "0.0.0.0", 7000, "10.251.1.2", 7000, "pndbr1")),
)


def save(ns: str | None, tool: str = "iptables", variant: str = "") -> list[str]:
    argv = [f"{tool}-{variant}-save" if variant else f"{tool}-save"]
    done = in_netns(ns, *argv) if ns else subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if not line.startswith("#")]


def ours(lines: list[str], prefix: str = "PYNETDRV") -> list[str]:
    return [line for line in lines if prefix in line]


@pytest.fixture(params=["nft", "legacy"])
def variant(request: pytest.FixtureRequest) -> str:
    """Both iptables backends: whichever the host's alternative points to must work."""
    return str(request.param)


@pytest.fixture
def firewall(nsname: str, variant: str) -> IptablesFirewall:
    return IptablesFirewall(netns=nsname, variant=variant)


async def test_kernel_holds_exactly_the_rendered_rules(firewall: IptablesFirewall, nsname: str, variant: str) -> None:
    host_before = save(None)
    await firewall.apply(STATE)
    assert await firewall.drift(STATE) == []
    first = save(nsname, variant=variant) + save(nsname, "ip6tables", variant)
    await firewall.apply(STATE)  # idempotent: the same rules, one jump each
    assert save(nsname, variant=variant) + save(nsname, "ip6tables", variant) == first
    jumps = [line for line in first if line.startswith("-A ") and line.split()[1] in
             ("FORWARD", "PREROUTING", "OUTPUT", "POSTROUTING")]
    assert sorted(jumps) == sorted([
        "-A FORWARD -j PYNETDRV-FORWARD",  # iptables
        "-A FORWARD -j PYNETDRV-FORWARD",  # ip6tables
        "-A PREROUTING -m addrtype --dst-type LOCAL -j PYNETDRV-DNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j PYNETDRV-DNAT",
        "-A POSTROUTING -j PYNETDRV-POSTROUTING",
        "-A PREROUTING -j PYNETDRV-PREROUTING",
    ])
    assert save(None) == host_before, "the host namespace must not change"


async def test_policy_and_foreign_rules_are_kept(firewall: IptablesFirewall, nsname: str, variant: str) -> None:
    for argv in (["-P", "FORWARD", "DROP"], ["-N", "DOCKER-USER"], ["-A", "DOCKER-USER", "-j", "RETURN"],
                 ["-A", "FORWARD", "-j", "DOCKER-USER"], ["-A", "FORWARD", "-o", "docker0", "-j", "ACCEPT"]):
        assert in_netns(nsname, f"iptables-{variant}", "-w", *argv).returncode == 0
    await firewall.apply(STATE)
    forward = [line for line in save(nsname, variant=variant) if line.startswith(("-A FORWARD", ":FORWARD"))]
    # Our jump right after DOCKER-USER's: the administrator's rules still come first.
    assert forward == [":FORWARD DROP [0:0]", "-A FORWARD -j DOCKER-USER", "-A FORWARD -j PYNETDRV-FORWARD",
                       "-A FORWARD -o docker0 -j ACCEPT"]
    await firewall.apply(FirewallState())
    assert [line for line in save(nsname, variant=variant) if line.startswith(("-A FORWARD", ":FORWARD"))] == [
        ":FORWARD DROP [0:0]", "-A FORWARD -j DOCKER-USER", "-A FORWARD -o docker0 -j ACCEPT"]
    docker_user = [line for line in save(nsname, variant=variant) if line.startswith("-A DOCKER-USER")]
    assert docker_user == ["-A DOCKER-USER -j RETURN"]


async def test_last_network_gone_removes_every_chain_and_jump(
    firewall: IptablesFirewall, nsname: str, variant: str
) -> None:
    await firewall.apply(STATE)
    await firewall.apply(FirewallState(networks=STATE.networks[:1]))
    assert not [line for line in ours(save(nsname, variant=variant)) if "pndbr1" in line or "pndbr2" in line]
    await firewall.apply(FirewallState())
    assert ours(save(nsname, variant=variant)) == [] and ours(save(nsname, "ip6tables", variant)) == []
    await firewall.remove_all()  # nothing left: fine
    assert await firewall.drift(FirewallState()) == []


async def test_flushed_rules_are_reported_and_rebuilt(firewall: IptablesFirewall, nsname: str, variant: str) -> None:
    await firewall.apply(STATE)
    assert in_netns(nsname, f"iptables-{variant}", "-w", "-t", "nat", "-F", "PYNETDRV-DNAT").returncode == 0
    assert in_netns(nsname, f"iptables-{variant}", "-w", "-D", "FORWARD", "-j", "PYNETDRV-FORWARD").returncode == 0
    drift = await firewall.drift(STATE)
    assert "iptables -t filter: jump missing: -A FORWARD -j PYNETDRV-FORWARD" in drift
    assert any(d.startswith("iptables -t nat: rule missing: -A PYNETDRV-DNAT") and "8080" in d for d in drift)
    await firewall.apply(STATE)
    assert await firewall.drift(STATE) == []


async def test_two_instances_never_touch_each_others_rules(nsname: str, variant: str) -> None:
    default = IptablesFirewall(netns=nsname, variant=variant)
    other = IptablesFirewall(netns=nsname, instance="pynetdrv-it", variant=variant)
    other_state = FirewallState(networks=(NetworkRules("pndbr9", ("10.251.9.0/24",)),))
    await default.apply(STATE)
    await other.apply(other_state)
    await default.apply(FirewallState())
    assert ours(save(nsname, variant=variant)) == ours(save(nsname, variant=variant), "PYNETDRV-IT") != []
    assert await other.drift(other_state) == []
    await other.apply(FirewallState())
    assert ours(save(nsname, variant=variant)) == []


async def test_host_settings(firewall: IptablesFirewall, nsname: str, kernel: AsyncIPRoute) -> None:
    await kernel.link("add", ifname="pndbr0", kind="bridge")  # route_localnet is a property of the bridge
    await write_sysctls(nsname, {"net/ipv4/ip_forward": "0"})
    await firewall.apply(FirewallState(networks=STATE.networks[:1]))
    read = in_netns(nsname, "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/pndbr0/route_localnet")
    assert read.stdout.split() == ["1", "1"]


async def test_a_failed_batch_is_an_error_naming_the_command(firewall: IptablesFirewall) -> None:
    bad = FirewallState(networks=(NetworkRules("bad bridge!", ("10.251.0.0/24",)),))
    with pytest.raises(FirewallError, match=r"iptables-(\w+-)?restore .*bridge!"):
        await firewall.apply(bad)


async def test_missing_namespace_is_an_error() -> None:
    with pytest.raises(FirewallError, match="pndt-nonexistent"):
        await IptablesFirewall(netns="pndt-nonexistent").apply(STATE)
