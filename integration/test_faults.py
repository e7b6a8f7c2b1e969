"""Fault injection against the real dockerd: pynetdrv SIGKILLed during container churn, dockerd
SIGKILLed during churn, pynetdrv down while dockerd restarts, and a simulated host reboot.

Every test ends with the oracle (faults.check_clean_or_repairable): `pynetdrv check` (state vs
kernel vs Docker) clean - or, when Docker lost calls it resent with an empty body while pynetdrv
restarted (moby/moby#39331), only findings `check --repair` fixes, and clean after one repair with
the daemon stopped - and no address held twice among running containers. Each prints a FAULT-FIGURES line (containers
started, kills injected, timings) for docs/reliability.md.

CI runs the short version (about a minute of churn per churn test); PYNETDRV_LONG=1 runs minutes.
Subnets: 10.224.0.0/15 only."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from integration.cmd import run, wait_for
from integration.docker_objects import Container, Network, docker, ping
from integration.dockerd import docker_answers, start_dockerd
from integration.faults import (
    LONG,
    Churn,
    FaultCounts,
    FaultSubnets,
    PynetdrvKiller,
    check_clean_or_repairable,
    kill_dockerd,
    network_addresses_unique,
    running_addresses,
)
from integration.host import our_links

#: Docker's own retry when a plugin socket is missing or does not answer: backoff 1+2+4+8 s
#: (pkg/plugins: it gives up once the next wait would pass 30 s), about 15 s per lookup.
DOCKER_PLUGIN_RETRY = 15.0


@pytest.fixture(scope="session")
def fault_subnets() -> FaultSubnets:
    return FaultSubnets()


@pytest.fixture
def fault_net(fault_subnets: FaultSubnets, subnets: Any, make_network: Callable[..., Network]) -> Network:
    sub = fault_subnets.v4()
    subnets.note(str(sub))  # for the after-test leak check
    net = make_network("--subnet", str(sub))
    net.subnet = sub  # type: ignore[attr-defined]
    return net


def gateway(net: Network) -> str:
    return str(next(net.subnet.hosts()))  # type: ignore[attr-defined]


def wait_running(containers: list[Container], net: Network, timeout: float) -> float:
    """Wait until every container runs with an address on `net`; returns the seconds it took."""
    t0 = time.monotonic()

    def back() -> bool:
        for c in containers:
            info = c.inspect()
            addr = ((info["NetworkSettings"]["Networks"] or {}).get(net.name) or {}).get("IPAddress")
            if not (info["State"]["Running"] and addr):
                return False
        return True

    wait_for(back, timeout, f"{[c.name for c in containers]} (--restart always) to run with an address on {net.name}",
             interval=0.5)
    return time.monotonic() - t0


def survivors_and_oracle(pynetdrv: Any, net: Network, make_container: Callable[..., Container],
                         always: list[Container]) -> Any:
    """After the faults: no address twice (containers' and network's view), every
    survivor reaches the gateway, a fresh container works, then `pynetdrv check`."""
    running_addresses(net)
    network_addresses_unique(net)
    for c in always:
        ping(c, gateway(net), within=10)
    works_after(net, make_container, always)
    return check_clean_or_repairable(pynetdrv)


def works_after(net: Network, make_container: Callable[..., Container], peers: list[Container]) -> Container:
    """A fresh container gets a free address and reaches the gateway and every peer."""
    fresh = make_container(net)
    ip = fresh.ip(net)
    taken = running_addresses(net)
    assert list(taken.values()).count(str(ip)) == 1
    ping(fresh, gateway(net), within=10)
    for peer in peers:
        ping(fresh, peer.ip(net), within=10)
    return fresh


def test_churn_while_pynetdrv_is_sigkilled(pynetdrv, fault_net, make_container):
    """4 workers start and remove containers on one network while pynetdrv is SIGKILLed every
    2-6 s and restarted after up to 1.5 s."""
    net = fault_net
    anchor = make_container(net)  # lives through it all
    counts = FaultCounts()
    seconds = 300.0 if LONG else 40.0
    t0 = time.monotonic()
    with Churn(net, counts, workers=4), PynetdrvKiller(pynetdrv, counts):
        time.sleep(seconds)
    elapsed = time.monotonic() - t0
    counts.report("churn + pynetdrv SIGKILL", elapsed)
    assert counts.pynetdrv_kills >= 5, counts
    assert counts.started >= 10, counts

    running = running_addresses(net)
    network_addresses_unique(net)
    ping(anchor, gateway(net), within=10)
    works_after(net, make_container, [anchor])
    oracle = check_clean_or_repairable(pynetdrv)
    running_addresses(net)
    counts.report("churn + pynetdrv SIGKILL", elapsed, {"running_at_end": len(running), **oracle.figures()})


def test_churn_while_dockerd_is_sigkilled(pynetdrv, fault_net, make_container):
    """3 workers churn while dockerd is SIGKILLed (once in CI, every ~minute in long mode) and
    started again; --restart always containers come back, with no address twice."""
    net = fault_net
    always = [make_container(net, "--restart", "always") for _ in range(3)]
    before = {c.name: c.ip(net) for c in always}
    counts = FaultCounts()
    kills = 4 if LONG else 1
    slice_s = 60.0 if LONG else 15.0
    t0 = time.monotonic()
    recover: list[float] = []
    with Churn(net, counts, workers=3):
        for _ in range(kills):
            time.sleep(slice_s)
            proc = kill_dockerd(signal.SIGKILL)
            counts.add(dockerd_kills=1)
            start_dockerd(proc, timeout=120)
            recover.append(wait_running(always, net, 90))
        time.sleep(slice_s)
    elapsed = time.monotonic() - t0
    assert pynetdrv.running(), "pynetdrv died while dockerd was killed"
    wait_running(always, net, 90)
    after = {c.name: c.ip(net) for c in always}
    oracle = survivors_and_oracle(pynetdrv, net, make_container, always)
    running_addresses(net)
    counts.report("churn + dockerd SIGKILL", elapsed, {
        "restart_always_back_after_s": [round(r, 1) for r in recover],
        "restart_always_same_address": sum(before[n] == after[n] for n in before), **oracle.figures()})


@pytest.mark.once  # ~2 min of Docker's own plugin retries; the same on every engine
def test_pynetdrv_down_while_dockerd_restarts(pynetdrv, fault_net, make_container):
    """pynetdrv is down while dockerd restarts. dockerd's start waits for pynetdrv only as long
    as Docker's own plugin retry (about 15 s per plugin lookup; Docker makes its lookups one
    after the other: one for the network's IPAM driver, one per stale sandbox, one per
    --restart always container). Once pynetdrv is back the containers run again and new ones
    start, and what Docker could not tell pynetdrv while it was down is found by check."""
    net = fault_net
    n_always = 1
    always = [make_container(net, "--restart", "always") for _ in range(n_always)]
    counts = FaultCounts()
    t_all = time.monotonic()

    # Baseline: the same restart with pynetdrv up.
    proc = kill_dockerd(signal.SIGKILL)
    counts.add(dockerd_kills=1)
    t0 = time.monotonic()
    start_dockerd(proc, timeout=180)
    baseline = time.monotonic() - t0
    wait_running(always, net, 90)

    pynetdrv.stop(signal.SIGKILL)
    counts.add(pynetdrv_kills=1)
    try:
        proc = kill_dockerd(signal.SIGKILL)
        counts.add(dockerd_kills=1)
        t0 = time.monotonic()
        start_dockerd(proc, timeout=180)
        with_pynetdrv_down = time.monotonic() - t0
        time.sleep(2)
    finally:
        t_back = time.monotonic()
        if not pynetdrv.running():
            pynetdrv.start()
    held_up = with_pynetdrv_down - baseline
    lookups = 1 + 2 * n_always
    print(f"dockerd answered after {with_pynetdrv_down:.1f} s with pynetdrv down, {baseline:.1f} s with it up "
          f"({lookups} plugin lookups of Docker's ~{DOCKER_PLUGIN_RETRY:.0f} s retry expected)")
    assert held_up <= lookups * DOCKER_PLUGIN_RETRY + 10, (
        f"dockerd's start took {held_up:.1f} s longer with pynetdrv down ({with_pynetdrv_down:.1f} s vs "
        f"{baseline:.1f} s): more than Docker's own plugin retry for {lookups} lookups")

    # Docker gives up on a --restart always container whose start failed while it booted; see
    # whether it starts them by itself once pynetdrv answers, else start them as a person would.
    try:
        wait_running(always, net, 30)
        by_docker = True
    except AssertionError:
        by_docker = False
        docker("start", *[c.name for c in always], timeout=120)
    back = wait_running(always, net, 60)
    since_pynetdrv = time.monotonic() - t_back
    oracle = survivors_and_oracle(pynetdrv, net, make_container, always)
    counts.report("pynetdrv down while dockerd restarts", time.monotonic() - t_all, {**oracle.figures(),
        "dockerd_start_s_pynetdrv_up": round(baseline, 1),
        "dockerd_start_s_pynetdrv_down": round(with_pynetdrv_down, 1),
        "restart_always_restarted_by_docker": by_docker,
        "restart_always_running_s_after_pynetdrv_start": round(since_pynetdrv, 1),
        "wait_s": round(back, 1)})


def test_simulated_host_reboot(pynetdrv, fault_net, make_container):
    """Power loss: pynetdrv and dockerd SIGKILLed, every kernel object of pynetdrv deleted (as
    after a reboot), then pynetdrv started first (as systemd does, Before=docker.service) and
    dockerd after it: the --restart always containers are re-created on a rebuilt bridge."""
    net = fault_net
    always = [make_container(net, "--restart", "always") for _ in range(3)]
    plain = make_container(net)
    counts = FaultCounts()
    t_all = time.monotonic()

    pynetdrv.stop(signal.SIGKILL)
    counts.add(pynetdrv_kills=1)
    proc = kill_dockerd(signal.SIGKILL)
    counts.add(dockerd_kills=1)
    ours = our_links()
    assert net.bridge in ours, f"{net.bridge} is not among our links {sorted(ours)}"
    # Bridges last: deleting a host veth end takes its peer (in the container) with it.
    for name in sorted(ours, key=lambda n: n.startswith("pnbr-")):
        run(["ip", "link", "del", name], check=False)
    gone = our_links()
    assert not gone, f"could not delete {sorted(gone)}"

    pynetdrv.start()
    start_dockerd(proc, timeout=120)
    assert docker_answers()
    back = wait_running(always, net, 120)
    assert not plain.running(), "a container without a restart policy came back by itself"
    ping(always[0], always[1].ip(net), within=10)
    oracle = survivors_and_oracle(pynetdrv, net, make_container, always)
    counts.report("simulated host reboot", time.monotonic() - t_all, {**oracle.figures(),
        "links_deleted": len(ours), "restart_always_back_s": round(back, 1)})
