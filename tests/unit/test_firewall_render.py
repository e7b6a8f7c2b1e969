"""The rendered firewall, pinned by golden files (tests/unit/golden/firewall/): every rule
of every case is reviewed once, and any change to a rule shows up as a diff here.
Regenerate after an intended change with PYNETDRV_UPDATE_GOLDEN=1 and review the diff.
The netns tests prove that the kernel holds exactly these lines (iptables-save form)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pynetdrv.firewall.model import FirewallState, NetworkRules, PortRule, chain_prefix
from pynetdrv.firewall.render import forwarding_needed, render, restore_text, route_localnet_bridges

GOLDEN = Path(__file__).with_name("golden") / "firewall"

CASES = {
    "empty": FirewallState(),
    "one-network": FirewallState(networks=(NetworkRules("pnbr-0123456789", ("10.10.0.0/24",)),)),
    "dual-stack-with-ports": FirewallState(
        networks=(NetworkRules("pnbr-0123456789", ("10.10.0.0/24", "fd00:10::/64")),),
        ports=(PortRule("tcp", "0.0.0.0", 8080, "10.10.0.2", 80, "pnbr-0123456789"),
               PortRule("udp", "0.0.0.0", 9999, "10.10.0.2", 53, "pnbr-0123456789"),
               PortRule("sctp", "0.0.0.0", 3868, "10.10.0.3", 3868, "pnbr-0123456789"),
               PortRule("tcp", "127.0.0.1", 8081, "10.10.0.3", 80, "pnbr-0123456789")),
    ),
    "options": FirewallState(networks=(
        NetworkRules("nomasq", ("10.11.0.0/24",), masquerade=False),
        NetworkRules("noicc", ("10.12.0.0/24",), icc=False),
        NetworkRules("internal", ("10.13.0.0/24", "fd00:13::/64"), internal=True),
        NetworkRules("multi", ("10.14.0.0/24", "10.15.0.0/24")),
    )),
}


def rendered(state: FirewallState, family: int) -> str:
    return restore_text(render(state, chain_prefix("pynetdrv"), family), {})


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("case", sorted(CASES))
def test_rules_match_golden_file(case: str, family: int) -> None:
    path = GOLDEN / f"{case}.v{family}.rules"
    text = rendered(CASES[case], family)
    if os.environ.get("PYNETDRV_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with PYNETDRV_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


def test_order_of_networks_and_ports_does_not_matter() -> None:
    state = CASES["dual-stack-with-ports"]
    shuffled = FirewallState(networks=tuple(reversed(state.networks)), ports=tuple(reversed(state.ports)))
    assert rendered(shuffled, 4) == rendered(state, 4)


def test_every_packet_into_a_bridge_is_decided_before_any_outbound_rule() -> None:
    """Isolation depends on it: B's "-i B -j ACCEPT" must never see a packet for another
    of our bridges before that bridge's own DROP has."""
    lines = rendered(CASES["options"], 4).splitlines()
    forward = [line for line in lines if line.startswith("-A PYNETDRV-FORWARD")]
    last_into = max(i for i, line in enumerate(forward) if " -o " in line)
    first_out = min(i for i, line in enumerate(forward) if " -o " not in line)
    assert last_into < first_out


def test_host_settings_follow_the_networks() -> None:
    state = CASES["options"]
    assert route_localnet_bridges(state) == ["multi", "noicc", "nomasq"]  # not the internal one
    assert forwarding_needed(state, 4)
    assert not forwarding_needed(state, 6)  # the only IPv6 network is internal
    assert forwarding_needed(CASES["dual-stack-with-ports"], 6)


@pytest.mark.parametrize("instance", ["", "x" * 17, "bad name", "pynetdrv/it", "pynetdrv-statetest"])
def test_instance_names_that_cannot_name_chains_get_a_stable_hash(instance: str) -> None:
    prefix = chain_prefix(instance)
    assert prefix == chain_prefix(instance) and prefix.startswith("PN-") and len(prefix) == 13
    assert prefix != chain_prefix(instance + "x")


def test_chain_names_fit_iptables() -> None:
    prefix = chain_prefix("p" * 16)
    assert prefix == "P" * 16
    text = restore_text(render(CASES["one-network"], prefix, 4), {})
    chains = [line[1:].split()[0] for line in text.splitlines() if line.startswith(":")]
    assert all(c.startswith(prefix) and len(c) <= 28 for c in chains)
