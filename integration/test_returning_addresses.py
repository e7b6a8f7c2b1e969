"""Containers dockerd starts again after its own restart get their addresses back
(pynetdrv.returning), against the real dockerd: after dockerd is SIGKILLed and started again,
and after a simulated host reboot (pynetdrv too, and every kernel object of ours gone).

On a network with one --restart always container among plain ones it gets its IPv4 and IPv6
addresses back. On a network with two, Docker starts them in parallel and says nothing of which
one asks: neither may get the other's address (they get new ones)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

from integration.cmd import run, wait_for
from integration.docker_objects import Container, Network, ping
from integration.dockerd import start_dockerd
from integration.faults import kill_dockerd, network_addresses_unique, running_addresses
from integration.host import our_links


def recorded(pynetdrv: Any, *containers: Container) -> bool:
    """pynetdrv's restart record (state.restarts.json) names each container's addresses."""
    path = pynetdrv.state_path.with_suffix(".restarts.json")
    try:
        holders = json.loads(path.read_text())["addresses"]
    except (OSError, ValueError, KeyError):
        return False
    names = {h["name"] for h in holders.values()}
    return all(c.name in names for c in containers)


def back(containers: list[Container], nets: list[Network], timeout: float = 120) -> None:
    def running() -> bool:
        for c in containers:
            info = c.inspect()
            if not info["State"]["Running"]:
                return False
            eps = info["NetworkSettings"]["Networks"] or {}
            if not any((eps.get(n.name) or {}).get("IPAddress") for n in nets):
                return False
        return True

    wait_for(running, timeout, f"{[c.name for c in containers]} (--restart always) to run again", interval=0.5)


def scene(subnets: Any, make_network: Callable[..., Network], make_container: Callable[..., Container],
          pynetdrv: Any) -> dict[str, Any]:
    v4, v6 = subnets.pair()
    solo_net = make_network("--ipv6", "--subnet", str(v4), "--subnet", str(v6))
    pair_net = make_network("--subnet", str(subnets.v4()))
    plain = [make_container(solo_net) for _ in range(2)]
    solo = make_container(solo_net, "--restart", "always")
    plain.append(make_container(solo_net))
    pair = [make_container(pair_net, "--restart", "always") for _ in range(2)]
    wait_for(lambda: recorded(pynetdrv, solo, *plain, *pair), 30, "pynetdrv to record the containers' restart "
             "policies from Docker", interval=0.5)
    return {"gateway": next(v4.hosts()), "solo_net": solo_net, "pair_net": pair_net, "solo": solo, "pair": pair,
            "plain": plain,
            "before": (solo.ip(solo_net), solo.ip6(solo_net)), "pair_before": [c.ip(pair_net) for c in pair]}


def check_return(s: dict[str, Any]) -> None:
    solo, solo_net, pair, pair_net = s["solo"], s["solo_net"], s["pair"], s["pair_net"]
    back([solo, *pair], [solo_net, pair_net])
    assert (solo.ip(solo_net), solo.ip6(solo_net)) == s["before"], \
        f"{solo.name} came back with other addresses than {s['before']}"
    after = [c.ip(pair_net) for c in pair]
    assert after[0] != s["pair_before"][1] and after[1] != s["pair_before"][0], \
        f"the two returning containers were given each other's addresses: {s['pair_before']} -> {after}"
    assert not any(c.running() for c in s["plain"]), "a container without a restart policy came back"
    ping(pair[0], after[1], within=10)
    ping(solo, s["gateway"], within=10)
    for net in (solo_net, pair_net):
        running_addresses(net)
        network_addresses_unique(net)


def test_a_container_dockerd_starts_again_keeps_its_addresses(pynetdrv, subnets, make_network, make_container):
    s = scene(subnets, make_network, make_container, pynetdrv)
    start_dockerd(kill_dockerd(signal.SIGKILL), timeout=120)
    check_return(s)


def test_after_a_host_reboot_too(pynetdrv, subnets, make_network, make_container):
    """pynetdrv and dockerd SIGKILLed, our links deleted, pynetdrv started first: the record it
    reads back from its state directory says which container comes back."""
    s = scene(subnets, make_network, make_container, pynetdrv)
    pynetdrv.stop(signal.SIGKILL)
    proc = kill_dockerd(signal.SIGKILL)
    for name in sorted(our_links(), key=lambda n: n.startswith("pnbr-")):
        run(["ip", "link", "del", name], check=False)
    pynetdrv.start()
    start_dockerd(proc, timeout=120)
    check_return(s)
