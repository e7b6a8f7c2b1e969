"""bench --anchor: the interleaving of the two sides and the comparison table (pure parts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.anchor import compare, render, run_sides


def _result(rate: float, dup: float) -> dict[str, Any]:
    return {"figures": [
        {"bench": "ipam", "name": "v4 seq rate", "value": rate, "unit": "addr/s", "op": ">=", "target": 5000,
         "detail": "", "met": True},
        {"bench": "ipam", "name": "v4 seq duplicates", "value": dup, "unit": "", "op": "<=", "target": 0,
         "detail": "", "met": True},
    ]}


def test_sides_alternate_and_each_gets_every_round() -> None:
    calls: list[tuple[str, Path]] = []
    rates = iter([100.0, 200.0, 110.0, 190.0, 120.0, 210.0])

    def run(name: str, tree: Path) -> dict[str, Any]:
        calls.append((name, tree))
        return _result(next(rates), 0)

    out = run_sides(["ipam"], {"A": Path("/a"), "B": Path("/b")}, 3, run, say=lambda _: None)
    assert [t for _, t in calls] == [Path("/a"), Path("/b")] * 3
    assert [r["figures"][0]["value"] for r in out["ipam"]["A"]] == [100.0, 110.0, 120.0]
    assert [r["figures"][0]["value"] for r in out["ipam"]["B"]] == [200.0, 190.0, 210.0]


def test_comparison_is_the_ratio_of_medians_with_every_run_listed() -> None:
    results = {"ipam": {"A": [_result(100, 0), _result(120, 0), _result(110, 0)],
                        "B": [_result(200, 0), _result(210, 1), _result(190, 0)]}}
    rows = compare(results, "A", "B")
    assert rows[1] == ["v4 seq rate", "110 addr/s (100, 120, 110)", "200 addr/s (200, 210, 190)", "1.818"]
    assert rows[2] == ["v4 seq duplicates", "0 (0, 0, 0)", "0 (0, 1.00, 0)", "-"]
    text = render(rows)
    assert text.splitlines()[0].startswith("figure") and "1.818" in text
