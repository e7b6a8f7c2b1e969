"""Benchmarks through a real dockerd: container start (1) and iperf3 throughput (6), each on a
pynetdrv network against a built-in bridge network, interleaved."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import docker_env as de
from bench.daemon import Daemon
from bench.report import Figure
from bench.stats import ratio, run_interleaved, summarize

NETS = {"pynetdrv": f"{de.PREFIX}-net", "bridge": f"{de.PREFIX}-br"}


@contextmanager
def networks() -> Iterator[dict[str, str]]:
    """A pynetdrv-bench daemon in the host namespace, and one network on it and one built-in
    bridge network, each a /24 of 10.245/10.246; all removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="pynetdrv-bench-", dir="/var/tmp") as tmp:
        daemon = Daemon(de.PLUGIN_SOCKET, Path(tmp) / "state.db", Path(tmp) / "pynetdrv.log")
        daemon.start()
        try:
            de.remove_leftovers()
            de.docker("network", "create", "-d", de.PLUGIN, "--ipam-driver", de.PLUGIN,
                      "--subnet", "10.245.0.0/24", NETS["pynetdrv"])
            de.docker("network", "create", "-d", "bridge", "--subnet", "10.246.0.0/24", NETS["bridge"])
            yield NETS
        finally:
            try:
                de.remove_leftovers()
            finally:
                daemon.stop()


def _mm(samples: list[float], scale: float, unit: str) -> str:
    s = summarize(samples)
    return f"{s.median * scale:.3g} ({s.min * scale:.3g}-{s.max * scale:.3g}) {unit}"


def bench_container_start(nets: dict[str, str], quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    rounds = 6 if quick else 30

    def run(net: str) -> Callable[[], object]:
        return lambda: de.docker("run", "--rm", "--network", net, de.BUSYBOX, "true")

    times = run_interleaved({side: run(net) for side, net in nets.items()}, rounds, warmup=2)
    r = ratio(times["pynetdrv"], times["bridge"])
    fig = Figure("container_start", "docker run --rm: pynetdrv / bridge", r, "x", "<=", 1.03,
                 f"pynetdrv {_mm(times['pynetdrv'], 1e3, 'ms')} vs bridge {_mm(times['bridge'], 1e3, 'ms')}")
    return [fig], {"seconds": times}


def bench_iperf(nets: dict[str, str], quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    rounds, seconds = (2, 3) if quick else (5, 8)
    de.ensure_iperf_image()
    servers = {}
    for side, net in nets.items():
        name = f"{de.PREFIX}-iperf-{side}"
        de.docker("run", "-d", "--name", name, "--network", net, de.IPERF_IMAGE, "-s")
        ip = de.docker("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", name)
        servers[side] = ip
    time.sleep(1)
    gbits: dict[str, list[float]] = {side: [] for side in nets}

    def run(side: str) -> Callable[[], None]:
        def once() -> None:
            out = de.docker("run", "--rm", "--network", nets[side], de.IPERF_IMAGE, "-c", servers[side],
                            "-t", str(seconds), "-J", timeout=seconds + 60)
            gbits[side].append(json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9)
        return once

    run_interleaved({side: run(side) for side in nets}, rounds, warmup=1)
    for side in nets:  # drop the warm-up round's figures
        gbits[side] = gbits[side][1:]
    mtus = {side: de.docker("run", "--rm", "--network", net, de.BUSYBOX, "cat", "/sys/class/net/eth0/mtu")
            for side, net in nets.items()}
    r = statistics.median(gbits["pynetdrv"]) / statistics.median(gbits["bridge"])
    fig = Figure("iperf3", "TCP throughput: pynetdrv / bridge", r, "x", ">=", 0.97,
                 f"pynetdrv {_mm(gbits['pynetdrv'], 1, 'Gbit/s')} vs bridge {_mm(gbits['bridge'], 1, 'Gbit/s')}, "
                 f"{seconds} s each, eth0 MTU {mtus['pynetdrv']}/{mtus['bridge']}")
    return [fig], {"gbit_per_s": gbits, "seconds_per_run": seconds, "mtu": mtus}
