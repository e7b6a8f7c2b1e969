"""The benchmarks' results table, target verdicts and profile summary (pure text, no timing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.profile import parse_collapsed, summarize_profile
from bench.report import Figure, fmt, table, write_json


@pytest.mark.parametrize(("fig", "met"), [
    (Figure("b", "ratio", 1.02, "x", "<=", 1.03), True),
    (Figure("b", "ratio", 1.03, "x", "<=", 1.03), True),
    (Figure("b", "ratio", 1.04, "x", "<=", 1.03), False),
    (Figure("b", "rate", 4999, "addr/s", ">=", 5000), False),
    (Figure("b", "rate", 5000, "addr/s", ">=", 5000), True),
    (Figure("b", "info", 3.0, "ms"), None),
])
def test_target_verdict(fig: Figure, met: bool | None) -> None:
    assert fig.met is met
    assert fig.as_dict()["met"] is met


def test_unknown_operator_is_an_error() -> None:
    with pytest.raises(ValueError, match="operator"):
        _ = Figure("b", "x", 1.0, "", "<", 2.0).met


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (0.0123456, "0.0123"), (1.23456, "1.23"), (12.345, "12.3"), (123.45, "123"), (65534.2, "65,534"),
])
def test_fmt_three_significant_digits(value: float, text: str) -> None:
    assert fmt(value) == text


def test_table_marks_missed_targets_and_lists_errors() -> None:
    figs = [Figure("ipam", "seq rate", 1200.0, "addr/s", ">=", 5000, "65534 addresses"),
            Figure("coldstart", "first answer", 250.0, "ms", "<=", 300)]
    text = table(figs, {"iperf3": "RuntimeError: docker run failed\nlast line"})
    lines = text.splitlines()
    assert lines[0].startswith("| benchmark") and set(lines[1]) <= {"|", "-"}
    assert "MISSED" in lines[2] and "1,200 addr/s" in lines[2] and ">= 5,000" in lines[2]
    assert "| met" in lines[3]
    assert "ERROR" in lines[4] and "last line" in lines[4]
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_write_json_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "results.json"
    write_json(path, {"quick": True}, [Figure("b", "n", 2.0, "ms", "<=", 5)],
               {"b": {"s": [1, 2], "t": [0.123456789, (2.0000004,)]}}, {})
    doc = json.loads(path.read_text())
    assert doc["meta"] == {"quick": True}
    assert doc["figures"][0]["met"] is True and doc["raw"]["b"]["s"] == [1, 2]
    assert doc["raw"]["b"]["t"] == [0.123457, [2.0]]  # rounded to 1 us


def test_profile_summary_counts_inclusive_and_self() -> None:
    collapsed = "main;serve;commit 6\nmain;serve;parse 3\nmain;idle 1\nbroken line\n\n"
    assert parse_collapsed(collapsed)[0] == (["main", "serve", "commit"], 6)
    text = summarize_profile(collapsed)
    assert text.splitlines()[0] == "10 samples"
    assert "100.0%  main" in text and " 90.0%  serve" in text
    self_part = text.split("self (innermost frame):")[1]
    assert self_part.splitlines()[1].strip() == "60.0%  commit"
    assert summarize_profile("") == "no samples"


def test_markdown_names_the_run_and_holds_the_table() -> None:
    from bench.report import markdown

    meta = {"command": "python3 -m bench", "date": "2026-11-22 06:00 UTC", "git_commit": "abc123",
            "machine": "2 x CPU", "load_average_at_start": {"ipam": 4.5}}
    text = markdown(meta, [Figure("ipam", "rate", 650.0, "addr/s", ">=", 5000)], {})
    assert text.startswith("Run of `python3 -m bench` on 2026-11-22 06:00 UTC, commit abc123.")
    assert "ipam 4.5" in text
    assert "| ipam      | rate   | 650 addr/s | >= 5,000 | MISSED |" in text
