"""IptablesFirewall inside the test namespace, read back with ``iptables -S``.
The host namespace's firewall is only ever read, never changed."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from netns_util import in_netns, iptables_s

from pynetdrv.dataplane.base import BridgeSpec, DataplaneError
from pynetdrv.dataplane.firewall import IptablesFirewall
from pynetdrv.dataplane.netlink import NetlinkDataplane

TOOLS = ["iptables", "ip6tables"]


def rule(bridge: str) -> str:
    return f"-A PYNETDRV-FORWARD -i {bridge} -o {bridge} -m comment --comment pynetdrv -j ACCEPT"


def ours(lines: list[str]) -> list[str]:
    return [line for line in lines if "PYNETDRV" in line]


@pytest.fixture
def bridge() -> str:
    # Random, so the host check below cannot be fooled by anyone else's rule.
    return f"pbr{secrets.token_hex(3)}"


@pytest.fixture
def firewall(nsname: str) -> IptablesFirewall:
    return IptablesFirewall(netns=nsname)


@pytest.mark.parametrize("tool", TOOLS)
async def test_ensure_bridge_via_dataplane(
    dataplane: NetlinkDataplane, nsname: str, bridge: str, tool: str
) -> None:
    await dataplane.ensure_bridge(BridgeSpec(bridge, "d" * 64, "02:42:0a:fb:00:01", None))
    assert ours(iptables_s(nsname, tool)) == [
        "-N PYNETDRV-FORWARD",
        "-A FORWARD -j PYNETDRV-FORWARD",
        rule(bridge),
    ]
    assert not [line for line in iptables_s(None, tool) if bridge in line]  # host untouched


@pytest.mark.parametrize("tool", TOOLS)
async def test_ensure_bridge_is_idempotent(
    firewall: IptablesFirewall, nsname: str, tool: str
) -> None:
    await firewall.ensure_bridge("pndbr0")
    await firewall.ensure_bridge("pndbr0")
    assert ours(iptables_s(nsname, tool)) == [
        "-N PYNETDRV-FORWARD",
        "-A FORWARD -j PYNETDRV-FORWARD",
        rule("pndbr0"),
    ]


@pytest.mark.parametrize("tool", TOOLS)
async def test_jump_goes_first_and_policy_is_kept(
    firewall: IptablesFirewall, nsname: str, tool: str
) -> None:
    # What Docker leaves behind: DROP policy and rules of its own in FORWARD.
    for args in (["-P", "FORWARD", "DROP"], ["-A", "FORWARD", "-o", "docker0", "-j", "DROP"]):
        assert in_netns(nsname, tool, "-w", *args).returncode == 0
    await firewall.ensure_bridge("pndbr0")
    forward = [line for line in iptables_s(nsname, tool) if line.split()[1:2] == ["FORWARD"]]
    assert forward == [
        "-P FORWARD DROP",
        "-A FORWARD -j PYNETDRV-FORWARD",
        "-A FORWARD -o docker0 -j DROP",
    ]


@pytest.mark.parametrize("tool", TOOLS)
async def test_remove_bridge(firewall: IptablesFirewall, nsname: str, tool: str) -> None:
    await firewall.ensure_bridge("pndbr0")
    await firewall.ensure_bridge("pndbr1")
    await firewall.remove_bridge("pndbr0")
    await firewall.remove_bridge("pndbr0")  # already gone: fine
    assert ours(iptables_s(nsname, tool)) == [
        "-N PYNETDRV-FORWARD",
        "-A FORWARD -j PYNETDRV-FORWARD",
        rule("pndbr1"),
    ]


async def test_remove_bridge_without_chain(firewall: IptablesFirewall, nsname: str) -> None:
    await firewall.remove_bridge("pndbr0")
    assert ours(iptables_s(nsname)) == []


async def test_owned_bridges(firewall: IptablesFirewall, nsname: str) -> None:
    assert await firewall.owned_bridges() == set()
    await firewall.ensure_bridge("pndbr0")
    await firewall.ensure_bridge("pndbr1")
    assert await firewall.owned_bridges() == {"pndbr0", "pndbr1"}
    await firewall.remove_bridge("pndbr0")
    assert await firewall.owned_bridges() == {"pndbr1"}
    # A rule only in one family still counts: the bridge has rules to remove.
    assert in_netns(nsname, "iptables", "-w", "-D", *rule("pndbr1").split()[1:]).returncode == 0
    assert await firewall.owned_bridges() == {"pndbr1"}


@pytest.mark.parametrize("tool", TOOLS)
async def test_remove_all(firewall: IptablesFirewall, nsname: str, tool: str) -> None:
    assert in_netns(nsname, tool, "-w", "-P", "FORWARD", "DROP").returncode == 0
    await firewall.ensure_bridge("pndbr0")
    await firewall.ensure_bridge("pndbr1")
    await firewall.remove_all()
    await firewall.remove_all()  # nothing left: fine
    assert iptables_s(nsname, tool) == ["-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT"]


async def test_iptables_missing(
    nsname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataplaneError, match=r"^iptables not found: install the iptables package$"):
        await IptablesFirewall(netns=nsname).ensure_bridge("pndbr0")


async def test_missing_namespace_is_an_error() -> None:
    with pytest.raises(DataplaneError, match="pndt-nonexistent"):
        await IptablesFirewall(netns="pndt-nonexistent").remove_bridge("pndbr0")


async def test_failed_command_is_named(firewall: IptablesFirewall) -> None:
    # iptables refuses interface names longer than 15 characters (exit 2,
    # bad arguments): already the -C check says so, and that is an error,
    # not "rule absent".
    pattern = (
        r"^nsenter --net=/run/netns/pndt-\w+ iptables -w -C PYNETDRV-FORWARD -i x{20} "
        r".* failed \(exit 2\): "
    )
    with pytest.raises(DataplaneError, match=pattern):
        await firewall.ensure_bridge("x" * 20)


async def test_two_instances_share_the_chain(nsname: str) -> None:
    default, other = (
        IptablesFirewall(netns=nsname),
        IptablesFirewall(netns=nsname, instance="pynetdrv-it"),
    )
    await default.ensure_bridge("pndbr0")
    await other.ensure_bridge("pndbr1")
    assert await default.owned_bridges() == {"pndbr0"}
    assert await other.owned_bridges() == {"pndbr1"}
    await default.remove_bridge("pndbr1")  # not its rule: left alone

    await other.remove_all()  # the default instance still needs the chain
    assert ours(iptables_s(nsname)) == [
        "-N PYNETDRV-FORWARD",
        "-A FORWARD -j PYNETDRV-FORWARD",
        rule("pndbr0"),
    ]
    await default.remove_all()
    assert ours(iptables_s(nsname)) == []
