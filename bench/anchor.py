"""``--anchor REV``: the same benchmarks on a checkout of REV, run interleaved with this checkout
(A B A B ..., so machine load and drift hit both sides alike), and a table comparing the two.

The checkout is a detached ``git worktree`` under /var/tmp, removed afterwards.  Each side's worker
runs with that side's tree first on ``sys.path`` (cwd and PYTHONPATH), so its ``bench.worker`` and the
``pynetdrv`` daemon it starts are that side's code, on the same interpreter and dependencies."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.report import Figure, fmt
from bench.stats import interleaving

RunOne = Callable[[str, Path], dict[str, Any]]  # (benchmark, tree) -> the worker's result


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def anchor_checkout(repo: Path, rev: str) -> Iterator[tuple[Path, str]]:
    """A detached worktree of ``rev``; yields (its path, its short commit)."""
    sha = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = Path(f"/var/tmp/pynetdrv-anchor-{sha[:12]}")
    if tree.exists():
        _git(repo, "worktree", "remove", "--force", str(tree))
    _git(repo, "worktree", "add", "--detach", str(tree), sha)
    try:
        yield tree, sha[:12]
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))


def run_sides(names: list[str], sides: dict[str, Path], rounds: int, run: RunOne,
              say: Callable[[str], None] = print) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """For each benchmark, ``rounds`` results per side, measured interleaved.
    Returns {benchmark: {side: [result, ...]}}."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in names:
        out[name] = {label: [] for label in sides}
        for i, label in enumerate(interleaving(list(sides), rounds)):
            say(f"==> bench: {name} on {label} (round {i // len(sides) + 1} of {rounds})")
            out[name][label].append(run(name, sides[label]))
    return out


def compare(results: dict[str, dict[str, list[dict[str, Any]]]], anchor: str, this: str) -> list[list[str]]:
    """Rows: figure, anchor's values (median), this side's values (median), ratio of medians."""
    rows = [["figure", f"{anchor}: median (runs)", f"{this}: median (runs)", "ratio"]]
    for sides in results.values():
        names: list[str] = []
        values: dict[str, dict[str, list[float]]] = {anchor: {}, this: {}}
        units: dict[str, str] = {}
        for label in (anchor, this):
            for result in sides[label]:
                for d in result["figures"]:
                    fig = Figure(**{k: v for k, v in d.items() if k != "met"})
                    if fig.name not in names:
                        names.append(fig.name)
                    units[fig.name] = fig.unit
                    values[label].setdefault(fig.name, []).append(fig.value)
        for name in names:
            a, b = values[anchor].get(name, []), values[this].get(name, [])
            ma = statistics.median(a) if a else None
            mb = statistics.median(b) if b else None
            ratio = f"{mb / ma:.3f}" if ma and mb is not None else "-"
            unit = f" {units[name]}" if units[name] else ""

            def cell(m: float | None, vs: list[float], unit: str = unit) -> str:
                return "-" if m is None else f"{fmt(m)}{unit} ({', '.join(fmt(v) for v in vs)})"

            rows.append([name, cell(ma, a), cell(mb, b), ratio])
    return rows


def render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
