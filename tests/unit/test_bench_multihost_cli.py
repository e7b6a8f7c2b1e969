"""`python -m bench multihost` is a benchmark like the others, by name or in a full run, but a
--quick run (CI's reporting-only bench) leaves it out unless it is named."""

from __future__ import annotations

import pytest

from bench.cli import ALL, selection


def test_full_run_includes_multihost_quick_run_does_not() -> None:
    assert selection([], quick=False) == list(ALL)
    assert "multihost" in ALL
    assert selection([], quick=True) == [b for b in ALL if b != "multihost"]


def test_named_benchmarks_run_in_quick_mode_too_in_run_order() -> None:
    assert selection(["multihost"], quick=True) == ["multihost"]
    assert selection(["multihost", "ipam"], quick=False) == ["ipam", "multihost"]


def test_unknown_name_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown benchmark overlay"):
        selection(["overlay"], quick=False)
