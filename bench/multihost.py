"""``python -m bench multihost``: pynetdrv's cluster network against Docker's overlay in swarm mode
on the same three hosts of the one-machine lab (issue 12, "Benchmarks"), each comparison
interleaved: cross-host TCP throughput (iperf3 h1 -> h2, also between the bare hosts), container
start on h1 (against a built-in bridge) and the time from ``docker run -d`` on h2 until a container
on h1 first reaches the new container.  The caller holds the integration lock."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.docker_env import IPERF_IMAGE, ensure_iperf3
from bench.multihost_figures import (
    BRIDGE,
    OVERLAY,
    PYNETDRV,
    UNDERLAY,
    iperf_gbits,
    iperf_retransmits,
    reach_figures,
    reach_samples,
    start_figures,
    throughput_figures,
)
from bench.multihost_lab import Stage, stage
from bench.multihost_probe import parse_output
from bench.report import Figure
from bench.stats import interleaving, run_interleaved
from integration.constants import IDLE_CMD, IMAGE
from integration.lab.containers import docker, must, start, underlay_mtu
from integration.lab.topology import HOSTS, in_ns

REPO = Path(__file__).resolve().parent.parent
H1, H2, _H3 = HOSTS
IPERF_PORT = 5201
IPERF_SERVER = 126  # its fixed address (Stage.address); reachability uses 0, 1, ...
REACH_TIMEOUT = 20.0
#: The hosts' logs (tens of MB at debug level): never in OUT, which is docs/benchmarks in a full run.
LAB_LOGS = Path("/var/tmp/pynetdrv-bench-multihost-logs")
RUN_ATTEMPTS = 3
Result = tuple[list[Figure], dict[str, Any]]


class RunFailed(RuntimeError):
    """``docker run -d`` on h2 failed (swarm's attach to an overlay can time out under load)."""


def _iperf_client(side: str, st: Stage, server: str, seconds: int) -> str:
    """One iperf3 run from h1 to ``server``; its JSON (raises if it measured nothing)."""
    args = ["-c", server, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
    if side == UNDERLAY:
        r = in_ns(H1.netns, ensure_iperf3(), *args, check=False, timeout=seconds + 60)
    else:
        r = docker(H1, "run", "--rm", "--network", st.nets[side], IPERF_IMAGE, *args, timeout=seconds + 60)
    if not r.stdout.strip():
        raise RuntimeError(f"iperf3 on {side}: no output, {r.stderr.strip()[-300:]}")
    iperf_gbits(r.stdout)  # raises on iperf3's own error
    return r.stdout


def bench_throughput(st: Stage, quick: bool, raw_dir: Path) -> Result:
    rounds, seconds = (2, 3) if quick else (5, 10)
    servers = {UNDERLAY: H2.address}
    underlay_server = subprocess.Popen(["ip", "netns", "exec", H2.netns, ensure_iperf3(), "-s", "-p", str(IPERF_PORT)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for side in (PYNETDRV, OVERLAY):
            servers[side] = st.address(side, IPERF_SERVER)
            must(H2, "run", "-d", "--name", f"mhbench-iperf-{side}", "--network", st.nets[side], "--ip", servers[side],
                 IPERF_IMAGE, "-s", "-p", str(IPERF_PORT))
        time.sleep(1)
        runs: dict[str, list[str]] = {side: [] for side in servers}

        def once(side: str) -> Callable[[], None]:
            return lambda: runs[side].append(_iperf_client(side, st, servers[side], seconds))

        run_interleaved({side: once(side) for side in (PYNETDRV, OVERLAY, UNDERLAY)}, rounds, warmup=1)
    finally:
        underlay_server.terminate()
        underlay_server.wait(timeout=10)
    mtus = {side: int(must(H1, "run", "--rm", "--network", st.nets[side], IMAGE, "cat",
                           "/sys/class/net/eth0/mtu").strip()) for side in (PYNETDRV, OVERLAY)}
    mtus[UNDERLAY] = underlay_mtu(H1)
    for side, texts in runs.items():
        for k, text in enumerate(texts):  # run 0 is the warm-up
            (raw_dir / f"iperf3-{side}-{k}.json").write_text(text)
    measured = {side: texts[1:] for side, texts in runs.items()}
    gbits = {side: [iperf_gbits(t) for t in texts] for side, texts in measured.items()}
    retrans = {side: [iperf_retransmits(t) for t in texts] for side, texts in measured.items()}
    return throughput_figures(gbits, seconds, mtus), {"gbit_per_s": gbits, "retransmits": retrans,
                                                      "seconds_per_run": seconds, "mtu": mtus}


def bench_container_start(st: Stage, quick: bool, _raw_dir: Path) -> Result:
    rounds = 3 if quick else 20

    def run(net: str) -> Callable[[], object]:
        return lambda: must(H1, "run", "--rm", "--network", net, IMAGE, "true")

    times = run_interleaved({side: run(st.nets[side]) for side in (PYNETDRV, BRIDGE, OVERLAY)}, rounds, warmup=2)
    return start_figures(times), {"seconds": times}


def _reach_once(prober_pid: str, net: str, address: str, name: str) -> tuple[float | None, float]:
    """Probe ``address`` from the h1 prober's netns while h2 starts a container with it; returns
    (seconds from ``docker run -d`` issued until the first echo reply or None, the run's own time)."""
    probe = subprocess.Popen(["nsenter", "-t", prober_pid, "-n", sys.executable, "-m", "bench.multihost_probe",
                              address, str(REACH_TIMEOUT)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.PIPE, text=True)
    try:
        assert probe.stdout is not None
        if probe.stdout.readline().strip() != "ready":
            raise RuntimeError(f"prober for {address} did not start (exit {probe.wait(timeout=10)})")
        t0 = time.monotonic()
        r = docker(H2, "run", "-d", "--name", name, "--network", net, "--ip", address, IMAGE, *IDLE_CMD)
        ran = time.monotonic() - t0
        if r.returncode != 0:
            raise RunFailed(f"h2: docker run {name} on {net}: {r.stderr.strip()}")
        out, _ = probe.communicate(timeout=REACH_TIMEOUT + 10)
        reached = parse_output(out)
        return (None if reached is None else reached - t0), ran
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
        docker(H2, "rm", "-f", name, timeout=60)


def bench_reachability(st: Stage, quick: bool, _raw_dir: Path) -> Result:
    n = 5 if quick else 40
    sides = (PYNETDRV, OVERLAY)
    probers = {}
    for side in sides:
        c = start(H1, f"mhbench-probe-{side}", st.nets[side])
        probers[side] = must(H1, "inspect", "-f", "{{.State.Pid}}", c.name).strip()
    outcomes: dict[str, list[float | None]] = {side: [] for side in sides}
    runs: dict[str, list[float]] = {side: [] for side in sides}
    failed_runs: dict[str, list[str]] = {side: [] for side in sides}
    slots = itertools.count()  # a new address for every attempt, a retry included
    for i, side in enumerate(interleaving(sides, n + 1)):  # the first round is a warm-up
        for attempt in range(RUN_ATTEMPTS):  # a failed run is retried, and reported
            try:
                reached, ran = _reach_once(probers[side], st.nets[side], st.address(side, next(slots)),
                                           f"mhbench-reach-{i}")
                break
            except RunFailed as e:
                failed_runs[side].append(str(e))
                if attempt == RUN_ATTEMPTS - 1:
                    raise
        if i >= len(sides):
            outcomes[side].append(reached)
            runs[side].append(ran)
    samples = {side: reach_samples(outcomes[side], REACH_TIMEOUT) for side in sides}
    unreached = {side: sum(v is None for v in outcomes[side]) for side in sides}
    failures = {side: len(v) for side, v in failed_runs.items()}
    return reach_figures(samples, unreached, runs, failures), {
        "seconds": samples, "unreached": unreached, "docker_run_seconds": runs, "timeout": REACH_TIMEOUT,
        "failed_docker_runs": failed_runs}


PARTS: dict[str, Callable[[Stage, bool, Path], Result]] = {
    "throughput": bench_throughput, "container_start": bench_container_start, "reachability": bench_reachability}


def run(quick: bool, out: Path, say: Callable[[str], None] = print) -> tuple[list[Figure], dict[str, Any],
                                                                              dict[str, str]]:
    """Every part on one lab; returns (figures, raw samples, errors by part).  The raw samples
    and every iperf3 JSON are also written to ``out``/multihost/, the lab's logs to LAB_LOGS."""
    raw_dir = out / "multihost"
    shutil.rmtree(raw_dir, ignore_errors=True)  # an earlier run's files (say, more iperf3 runs) would mix in
    raw_dir.mkdir(parents=True)
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with stage(LAB_LOGS, say) as st:
        raw["engine"] = st.engine
        for name, part in PARTS.items():
            say(f"==> multihost: {name}")
            t0 = time.monotonic()
            try:
                figs, raw[name] = part(st, quick, raw_dir)
                figures += figs
            except Exception as e:
                errors[f"multihost {name}"] = f"{type(e).__name__}: {e}"
            raw.setdefault("seconds_per_part", {})[name] = round(time.monotonic() - t0, 1)
    (raw_dir / "samples.json").write_text(json.dumps(
        {"figures": [f.as_dict() for f in figures], "errors": errors, "raw": raw}, indent=1) + "\n")
    return figures, raw, errors
