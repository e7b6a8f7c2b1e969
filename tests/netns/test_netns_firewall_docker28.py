"""Docker 28's FORWARD chain (DOCKER-USER, then DOCKER-FORWARD, which accepts whatever leaves
Docker's bridges) in the test namespace: our jump belongs between the two, and when Docker
re-inserts DOCKER-FORWARD at the top (as it does at every start), drift names it and apply puts
ours back, leaving Docker's and the administrator's rules alone."""

from __future__ import annotations

import pytest
from netns_util import in_netns

from pynetdrv.firewall.iptables import IptablesFirewall
from pynetdrv.firewall.model import FirewallState, NetworkRules

STATE = FirewallState(networks=(NetworkRules("pndbr0", ("10.251.0.0/24",)),))
JUMP = "-A FORWARD -j PYNETDRV-FORWARD"


@pytest.fixture(params=["nft", "legacy"])
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def firewall(nsname: str, variant: str) -> IptablesFirewall:
    return IptablesFirewall(netns=nsname, variant=variant)


def ipt(ns: str, variant: str, *argv: str) -> None:
    done = in_netns(ns, f"iptables-{variant}", "-w", *argv)
    assert done.returncode == 0, done.stderr


def forward(ns: str, variant: str) -> list[str]:
    done = in_netns(ns, f"iptables-{variant}-save", "-t", "filter")
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("-A FORWARD")]


def docker28_starts(ns: str, variant: str) -> None:
    """What dockerd 28.5 does to FORWARD when it starts (iptabler.go: EnsureJumpRule deletes
    and inserts DOCKER-FORWARD at the top; then DOCKER-USER is put first again)."""
    for chain in ("DOCKER-USER", "DOCKER-FORWARD"):
        if in_netns(ns, f"iptables-{variant}", "-w", "-S", chain).returncode != 0:
            ipt(ns, variant, "-N", chain)
    ipt(ns, variant, "-F", "DOCKER-FORWARD")
    ipt(ns, variant, "-A", "DOCKER-FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT")
    for chain in ("DOCKER-FORWARD", "DOCKER-USER"):
        in_netns(ns, f"iptables-{variant}", "-w", "-D", "FORWARD", "-j", chain)
        ipt(ns, variant, "-I", "FORWARD", "-j", chain)


async def test_our_jump_stays_ahead_of_docker_forward(firewall: IptablesFirewall, nsname: str, variant: str) -> None:
    docker28_starts(nsname, variant)
    ipt(nsname, variant, "-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "ACCEPT")  # the administrator's
    await firewall.apply(STATE)
    want = ["-A FORWARD -j DOCKER-USER", JUMP, "-A FORWARD -j DOCKER-FORWARD",
            "-A FORWARD -s 192.0.2.0/24 -j ACCEPT"]
    assert forward(nsname, variant) == want
    assert await firewall.drift(STATE) == []

    docker28_starts(nsname, variant)  # dockerd restarted: DOCKER-FORWARD is above ours now
    assert forward(nsname, variant) == ["-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-FORWARD", JUMP,
                                        "-A FORWARD -s 192.0.2.0/24 -j ACCEPT"]
    assert await firewall.drift(STATE) == [f"iptables -t filter: jump after Docker's rules: {JUMP}"]
    await firewall.apply(STATE)
    assert forward(nsname, variant) == want, "the jump was not moved back (or was duplicated)"
    assert await firewall.drift(STATE) == []
    await firewall.apply(STATE)  # idempotent
    assert forward(nsname, variant) == want


async def test_rules_of_the_administrator_above_ours_are_left_alone(firewall: IptablesFirewall, nsname: str,
                                                                    variant: str) -> None:
    await firewall.apply(STATE)
    ipt(nsname, variant, "-I", "FORWARD", "-s", "198.51.100.0/24", "-j", "DROP")
    assert await firewall.drift(STATE) == []
    await firewall.apply(STATE)
    assert forward(nsname, variant) == ["-A FORWARD -s 198.51.100.0/24 -j DROP", JUMP]
