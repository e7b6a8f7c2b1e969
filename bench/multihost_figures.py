"""Pure part of the multi-host benchmark (``python -m bench multihost``): reading iperf3's JSON,
the reachability samples, and the figures with their targets (issue 12, "Benchmarks").  No I/O."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence

from bench.report import Figure, fmt
from bench.stats import percentile, ratio, summarize

BENCH = "multihost"
#: Sides of the comparisons: pynetdrv's cluster network, Docker's overlay in swarm mode, the hosts
#: themselves on the underlay (throughput only) and a built-in bridge network (container start only).
PYNETDRV, OVERLAY, UNDERLAY, BRIDGE = "pynetdrv", "overlay", "underlay", "bridge"
THROUGHPUT_VS_OVERLAY = 1.0
THROUGHPUT_VS_UNDERLAY = 0.8
START_VS_BRIDGE = 1.15
REACH_P99_S = 1.0


class IperfError(RuntimeError):
    """iperf3 ran but measured nothing (its JSON carries an ``error``)."""


def iperf_gbits(text: str) -> float:
    """Received throughput in Gbit/s from ``iperf3 -J`` output (client side, TCP)."""
    doc = json.loads(text)
    if doc.get("error"):
        raise IperfError(f"iperf3: {doc['error']}")
    try:
        return float(doc["end"]["sum_received"]["bits_per_second"]) / 1e9
    except KeyError as e:
        raise IperfError(f"iperf3 JSON has no end.sum_received ({e})") from None


def iperf_retransmits(text: str) -> int:
    return int(json.loads(text).get("end", {}).get("sum_sent", {}).get("retransmits", 0))


def reach_samples(outcomes: Sequence[float | None], timeout: float) -> list[float]:
    """Seconds until first reached, one per attempt; an attempt never reached within ``timeout``
    (None) counts as ``timeout``, so it weighs on p99 instead of vanishing from it."""
    return [timeout if v is None else v for v in outcomes]


def _mm(samples: Sequence[float], scale: float, unit: str) -> str:
    s = summarize(samples)
    return f"{fmt(s.median * scale)} ({fmt(s.min * scale)}-{fmt(s.max * scale)}) {unit}"


def throughput_figures(gbits: Mapping[str, Sequence[float]], seconds: int,
                       mtus: Mapping[str, int]) -> list[Figure]:
    """pynetdrv against overlay (>= 1.0) and against the bare underlay (>= 0.8), ratio of medians."""
    detail = (f"pynetdrv {_mm(gbits[PYNETDRV], 1, 'Gbit/s')} vs overlay {_mm(gbits[OVERLAY], 1, 'Gbit/s')} "
              f"vs underlay {_mm(gbits[UNDERLAY], 1, 'Gbit/s')}; {len(gbits[PYNETDRV])} runs of {seconds} s, "
              f"MTU {mtus.get(PYNETDRV, '?')}/{mtus.get(OVERLAY, '?')}/{mtus.get(UNDERLAY, '?')}")
    return [
        Figure(BENCH, "h1->h2 TCP: pynetdrv / overlay", ratio(gbits[PYNETDRV], gbits[OVERLAY]), "x",
               ">=", THROUGHPUT_VS_OVERLAY, detail),
        Figure(BENCH, "h1->h2 TCP: pynetdrv / underlay", ratio(gbits[PYNETDRV], gbits[UNDERLAY]), "x",
               ">=", THROUGHPUT_VS_UNDERLAY, ""),
        Figure(BENCH, "h1->h2 TCP: overlay / underlay", ratio(gbits[OVERLAY], gbits[UNDERLAY]), "x"),
    ]


def start_figures(seconds: Mapping[str, Sequence[float]]) -> list[Figure]:
    """``docker run --rm`` on h1: the cluster network against a built-in bridge (<= 1.15), and
    overlay's ratio for comparison (no target: that is Docker's figure, not ours)."""
    return [
        Figure(BENCH, "docker run --rm on h1: pynetdrv / bridge", ratio(seconds[PYNETDRV], seconds[BRIDGE]), "x",
               "<=", START_VS_BRIDGE,
               f"pynetdrv {_mm(seconds[PYNETDRV], 1e3, 'ms')} vs bridge {_mm(seconds[BRIDGE], 1e3, 'ms')}, "
               f"{len(seconds[PYNETDRV])} runs each"),
        Figure(BENCH, "docker run --rm on h1: overlay / bridge", ratio(seconds[OVERLAY], seconds[BRIDGE]), "x",
               None, None, f"overlay {_mm(seconds[OVERLAY], 1e3, 'ms')}"),
    ]


def reach_figures(samples: Mapping[str, Sequence[float]], unreached: Mapping[str, int],
                  runs: Mapping[str, Sequence[float]], failed_runs: Mapping[str, int] | None = None) -> list[Figure]:
    """p50 and p99 of the time from ``docker run -d`` issued on h2 until h1 first reaches the
    container, per side; only pynetdrv's p99 has a target (<= 1 s).  ``failed_runs``: runs that
    failed and were retried (their time is not in the samples, so they are named in the detail)."""
    figs = []
    for side in (PYNETDRV, OVERLAY):
        s = samples[side]
        lost = f", {unreached[side]} never reached" if unreached.get(side) else ""
        if (failed_runs or {}).get(side):
            lost += f", {(failed_runs or {})[side]} docker run failed and retried"
        run_part = f"; the docker run -d itself {statistics.median(runs[side]) * 1e3:.0f} ms median" \
            if runs.get(side) else ""
        figs.append(Figure(BENCH, f"reachability p50, {side}", percentile(s, 50), "s", None, None,
                           f"{len(s)} containers on h2{lost}{run_part}"))
        target = REACH_P99_S if side == PYNETDRV else None
        figs.append(Figure(BENCH, f"reachability p99, {side}", percentile(s, 99), "s",
                           "<=" if target is not None else None, target, f"min {min(s):.3f} s, max {max(s):.3f} s"))
    return figs

