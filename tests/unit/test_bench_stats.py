"""The benchmarks' pure statistics: summaries, ratios, interleaving, windows (no timing)."""

from __future__ import annotations

import asyncio
import collections
import itertools

import pytest

from bench.stats import (
    duplicates,
    gaps,
    interleaving,
    percentile,
    ratio,
    run_interleaved,
    run_interleaved_async,
    summarize,
    window_ratio,
)


def test_percentile_is_nearest_rank_of_observed_values() -> None:
    samples = list(range(1, 101))  # 1..100, shuffled order must not matter
    samples.reverse()
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100
    assert percentile(samples, 50) == 50
    assert percentile(samples, 0) == 1
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_refuses_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], q)


def test_percentile_and_summary_refuse_no_samples() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        summarize([])


def test_summary() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.median, s.min, s.max, s.p99) == (4, 2.5, 1.0, 10.0, 10.0)


def test_ratio_is_of_medians_not_means() -> None:
    # one outlier moves the mean of the numerator a lot, the median not at all
    assert ratio([1.0, 2.0, 300.0], [1.0, 1.0, 1.0]) == 2.0
    with pytest.raises(ValueError, match="zero"):
        ratio([1.0], [0.0])


def test_interleaving_alternates_sides_every_slot() -> None:
    order = interleaving(["a", "b"], 3)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert all(x != y for x, y in itertools.pairwise(order))
    assert interleaving(["a"], 0) == []


def test_three_sides_rotate_so_none_always_follows_the_same_one() -> None:
    assert interleaving(["a", "b", "c"], 3) == ["a", "b", "c", "a", "c", "b", "a", "b", "c"]
    for labels in (["a", "b", "c"], ["a", "b", "c", "d"]):
        order = interleaving(labels, 20)
        assert all(x != y for x, y in itertools.pairwise(order))
        assert all(sorted(order[i:i + len(labels)]) == labels for i in range(0, len(order), len(labels)))
        pairs = collections.Counter(itertools.pairwise(order))
        assert set(pairs) == {(x, y) for x in labels for y in labels if x != y}  # each follows every other
        assert max(pairs.values()) - min(pairs.values()) <= 2, pairs


def test_interleaving_refuses_duplicate_labels_and_negative_rounds() -> None:
    with pytest.raises(ValueError, match="distinct"):
        interleaving(["a", "a"], 1)
    with pytest.raises(ValueError):
        interleaving(["a"], -1)


def _fake_clock(calls: list[str]) -> tuple[object, dict[str, object]]:
    """A clock that advances 1 s per call of side a and 3 s per call of side b."""
    now = [0.0]

    def clock() -> float:
        return now[0]

    def side(label: str, cost: float) -> object:
        def run() -> None:
            calls.append(label)
            now[0] += cost
        return run

    return clock, {"a": side("a", 1.0), "b": side("b", 3.0)}


def test_run_interleaved_drops_warmup_and_keeps_order() -> None:
    calls: list[str] = []
    clock, sides = _fake_clock(calls)
    times = run_interleaved(sides, rounds=3, warmup=2, clock=clock)  # type: ignore[arg-type]
    assert calls == ["a", "b"] * 5
    assert times == {"a": [1.0, 1.0, 1.0], "b": [3.0, 3.0, 3.0]}


def test_run_interleaved_async_times_each_await() -> None:
    calls: list[str] = []
    now = [0.0]

    def side(label: str, cost: float):  # type: ignore[no-untyped-def]
        async def run() -> None:
            calls.append(label)
            now[0] += cost
        return run

    times = asyncio.run(run_interleaved_async({"x": side("x", 2.0), "y": side("y", 5.0)}, rounds=2, warmup=1,
                                              clock=lambda: now[0]))
    assert calls == ["x", "y", "x", "y", "x", "y"]
    assert times == {"x": [2.0, 2.0], "y": [5.0, 5.0]}


def test_window_ratio_compares_last_to_first() -> None:
    durations = [1.0] * 10 + [5.0] * 5 + [2.0] * 10
    assert window_ratio(durations, 10) == 2.0
    assert window_ratio([1.0, 1.0], 1) == 1.0
    with pytest.raises(ValueError, match="need at least"):
        window_ratio([1.0] * 5, 3)
    with pytest.raises(ValueError):
        window_ratio([1.0] * 5, 0)


def test_gaps_turn_completion_stamps_into_per_op_time() -> None:
    assert gaps([12.0, 10.5, 11.0], start=10.0) == [0.5, 0.5, 1.0]
    assert gaps([], start=0.0) == []


def test_duplicates_counts_every_extra_occurrence() -> None:
    assert duplicates(["10.0.0.2", "10.0.0.3"]) == 0
    assert duplicates(["a", "a", "a", "b", "b"]) == 3
