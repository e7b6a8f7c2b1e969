"""The results table, its targets, and the JSON file.  Pure except ``write_json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One line of the table: a measured value, optionally with a target (``op`` "<=" or ">=")."""

    bench: str
    name: str
    value: float
    unit: str
    op: str | None = None
    target: float | None = None
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.op is None or self.target is None:
            return None
        if self.op == "<=":
            return self.value <= self.target
        if self.op == ">=":
            return self.value >= self.target
        raise ValueError(f"unknown target operator {self.op!r}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def fmt(value: float) -> str:
    """Three significant digits, no exponent for the ranges benchmarks produce."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def verdict(fig: Figure) -> str:
    met = fig.met
    return "" if met is None else ("met" if met else "MISSED")


def table(figures: list[Figure], errors: dict[str, str] | None = None) -> str:
    """A fixed-width text table (also valid Markdown) of the figures, then one line per error."""
    header = ["benchmark", "figure", "value", "target", "", "median (min-max) / detail"]
    rows = [
        [f.bench, f.name, f"{fmt(f.value)} {f.unit}".strip(),
         f"{f.op} {fmt(f.target)}" if f.op and f.target is not None else "", verdict(f), f.detail]
        for f in figures
    ]
    for bench, err in (errors or {}).items():
        rows.append([bench, "ERROR", "", "", "", err.splitlines()[-1][:100] if err else ""])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], figures: list[Figure], raw: dict[str, Any],
               errors: dict[str, str]) -> None:
    """Compact, floats to 6 decimals (1 us for seconds): a full run holds ~300,000 samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "figures": [f.as_dict() for f in figures], "errors": errors, "raw": _rounded(raw)}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def markdown(meta: dict[str, Any], figures: list[Figure], errors: dict[str, str]) -> str:
    """results.md: when, where and how the run was made, then the table."""
    loads = ", ".join(f"{k} {v}" for k, v in (meta.get("load_average_at_start") or {}).items())
    lines = [
        f"Run of `{meta.get('command')}` on {meta.get('date')}, commit {meta.get('git_commit')}.",
        "",
        f"- machine: {meta.get('machine')}; kernel {meta.get('kernel')}; {meta.get('os')}",
        f"- Python {meta.get('python')}; Docker {meta.get('docker')}",
        f"- 1-minute load average as each benchmark started: {loads or 'not recorded'}",
        "",
        table(figures, errors),
        "",
    ]
    return "\n".join(lines)
