"""Where the cross-host throughput goes: pynetdrv's cluster network with br_netfilter as dockerd
leaves it, with ``bridge-nf-call-iptables=0`` in h1 and h2, and with same-subnet bridged traffic
untracked (raw ``CT --notrack``, the gateway excluded), against Docker's overlay; interleaved.

    sudo .venv/bin/python -m tools.brnf_throughput [--rounds 4] [--seconds 8] [--underlay-gro]

Uses bench multihost's lab stage (lab up in cluster mode, swarm, networks; all of it down at the
end, also on failure) and its iperf3 client; holds the integration lock like the benchmark.
What it changes in h1/h2 (the sysctls, a raw chain ``BRNF-EXP``) lives in the lab's namespaces
and goes with them. Figures and findings: docs/benchmarks.md (issue 12)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.docker_env import IPERF_IMAGE, integration_lock
from bench.multihost import H1, H2, IPERF_PORT, IPERF_SERVER, _iperf_client
from bench.multihost_figures import OVERLAY, PYNETDRV, iperf_gbits
from bench.multihost_lab import NETWORKS, Stage, stage
from integration.lab.containers import must
from integration.lab.topology import HOSTS, HostSpec, in_ns

CHAIN = "BRNF-EXP"


def _bridge(host: HostSpec) -> str:
    out = in_ns(host.netns, "ip", "-br", "link", "show", "type", "bridge").stdout
    return next(line.split()[0] for line in out.splitlines() if line.startswith("pnbr-"))


def _set(call_iptables: int, notrack: bool) -> None:
    subnet = NETWORKS[PYNETDRV][1]
    gateway = subnet.rsplit(".", 1)[0] + ".1/32"
    for host in (H1, H2):
        for fam in ("iptables", "ip6tables"):
            in_ns(host.netns, "sysctl", "-qw", f"net.bridge.bridge-nf-call-{fam}={call_iptables}")
        ipt = ("iptables", "-t", "raw")
        in_ns(host.netns, *ipt, "-D", "PREROUTING", "-j", CHAIN, check=False)
        in_ns(host.netns, *ipt, "-F", CHAIN, check=False)
        in_ns(host.netns, *ipt, "-X", CHAIN, check=False)
        if notrack:
            b = _bridge(host)
            in_ns(host.netns, *ipt, "-N", CHAIN)
            in_ns(host.netns, *ipt, "-A", CHAIN, "-i", b, "-s", gateway, "-j", "RETURN")
            in_ns(host.netns, *ipt, "-A", CHAIN, "-i", b, "-d", gateway, "-j", "RETURN")
            in_ns(host.netns, *ipt, "-A", CHAIN, "-i", b, "-s", subnet, "-d", subnet, "-j", "CT", "--notrack")
            in_ns(host.netns, *ipt, "-I", "PREROUTING", "-j", CHAIN)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--underlay-gro", action="store_true",
                   help="turn GRO on for the hosts' underlay veths (eth0 in h1..h3; needs ethtool), as a real NIC "
                   "has it")
    args = p.parse_args()
    variants: dict[str, tuple[str, Callable[[], None]]] = {
        "pynetdrv, as shipped": (PYNETDRV, lambda: _set(1, False)),
        "pynetdrv, bridge-nf-call-iptables=0": (PYNETDRV, lambda: _set(0, False)),
        "pynetdrv, same-subnet notrack": (PYNETDRV, lambda: _set(1, True)),
        "overlay": (OVERLAY, lambda: _set(1, False)),
    }
    results: dict[str, list[float]] = {k: [] for k in variants}
    with integration_lock(300), stage(Path("/var/tmp/pynetdrv-brnf-logs")) as st:
        if args.underlay_gro:
            for host in HOSTS:
                in_ns(host.netns, "ethtool", "-K", "eth0", "gro", "on")
            print("underlay GRO:", in_ns(H2.netns, "ethtool", "-k", "eth0").stdout.count("generic-receive-offload: on"))
        servers = _servers(st)
        try:
            for rnd in range(args.rounds):
                for label, (side, apply) in variants.items():
                    apply()
                    g = iperf_gbits(_iperf_client(side, st, servers[side], args.seconds))
                    results[label].append(g)
                    print(f"round {rnd}: {label}: {g:.2f} Gbit/s", flush=True)
        finally:
            _set(1, False)
            for side in servers:
                must(H2, "rm", "-f", f"brnf-iperf-{side}")
    for label, runs in results.items():
        print(f"{label:40s} median {statistics.median(runs):5.2f}  runs {', '.join(f'{g:.2f}' for g in sorted(runs))}")


def _servers(st: Stage) -> dict[str, str]:
    servers = {}
    for side in (PYNETDRV, OVERLAY):
        servers[side] = st.address(side, IPERF_SERVER)
        must(H2, "run", "-d", "--name", f"brnf-iperf-{side}", "--network", st.nets[side], "--ip", servers[side],
             IPERF_IMAGE, "-s", "-p", str(IPERF_PORT))
    time.sleep(1)
    return servers


if __name__ == "__main__":
    main()
