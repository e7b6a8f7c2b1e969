"""Pure statistics for the benchmarks: summaries, ratios, interleaving.  No I/O."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    min: float
    max: float
    p99: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample: an observed value, never an
    interpolation, so p99 of 100 samples is the 99th smallest."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("summary of no samples")
    return Summary(len(samples), statistics.median(samples), min(samples), max(samples), percentile(samples, 99))


def ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Ratio of medians, the one figure every A-vs-B comparison reports."""
    den = statistics.median(denominator)
    if den == 0:
        raise ValueError("ratio against a zero median")
    return statistics.median(numerator) / den


def interleaving(labels: Sequence[str], rounds: int) -> list[str]:
    """The order to measure in: ``rounds`` rounds of every label, so drift hits every side alike
    and no side ever gets two slots in a row.  Two sides alternate (A B A B: each follows the
    other).  With three or more, each slot takes, of the labels the round has not had yet, the
    one that has followed the previous label least often (A B C, A C B, A B C, ... for three):
    in a fixed order one side would always follow the same other, and inherit what that one
    leaves running (bench multihost's pynetdrv run always came right after Docker's overlay,
    whose swarm clean-up goes on in the background: pynetdrv's CreateEndpoint took 40-56 ms
    there, 4-10 ms elsewhere)."""
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct: {list(labels)}")
    if len(labels) <= 2:
        return [label for _ in range(rounds) for label in labels]
    order: list[str] = []
    follows: Counter[tuple[str, str]] = Counter()
    for _ in range(rounds):
        left = list(labels)
        while left:
            prev = order[-1] if order else None
            pick = min((x for x in left if x != prev), key=lambda x: follows[(prev or "", x)])
            follows[(prev or "", pick)] += 1
            order.append(pick)
            left.remove(pick)
    return order


def run_interleaved(
    sides: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Time each side's callable ``rounds`` times, interleaved; the first ``warmup`` rounds are run
    and discarded.  Returns seconds per call, per label, in run order."""
    times: dict[str, list[float]] = {label: [] for label in sides}
    for i, label in enumerate(interleaving(list(sides), warmup + rounds)):
        t0 = clock()
        sides[label]()
        elapsed = clock() - t0
        if i >= warmup * len(sides):
            times[label].append(elapsed)
    return times


async def run_interleaved_async(
    sides: dict[str, Callable[[], Awaitable[Any]]], rounds: int, warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """``run_interleaved`` for coroutine functions."""
    times: dict[str, list[float]] = {label: [] for label in sides}
    for i, label in enumerate(interleaving(list(sides), warmup + rounds)):
        t0 = clock()
        await sides[label]()
        elapsed = clock() - t0
        if i >= warmup * len(sides):
            times[label].append(elapsed)
    return times


def window_ratio(durations: Sequence[float], window: int) -> float:
    """Time of the last ``window`` operations over the time of the first ``window``
    (> 1: the end of the run was slower)."""
    if window <= 0 or 2 * window > len(durations):
        raise ValueError(f"need at least {2 * max(window, 1)} durations for a window of {window}, got {len(durations)}")
    first = sum(durations[:window])
    if first == 0:
        raise ValueError("first window took no time")
    return sum(durations[-window:]) / first


def gaps(timestamps: Sequence[float], start: float) -> list[float]:
    """Completion timestamps (in completion order) -> time each completion added, from ``start``:
    the per-operation durations of a concurrent run."""
    ordered = sorted(timestamps)
    out, prev = [], start
    for t in ordered:
        out.append(t - prev)
        prev = t
    return out


def duplicates(values: Sequence[str]) -> int:
    """How many values occur more than once (counting every extra occurrence)."""
    return len(values) - len(set(values))
