"""PNG plots of a run's raw numbers (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _strip(ax: Any, series: dict[str, list[float]], scale: float, ylabel: str) -> None:
    labels = list(series)
    ax.boxplot([[v * scale for v in series[k]] for k in labels], showfliers=False)
    for i, k in enumerate(labels, start=1):
        ax.plot([i] * len(series[k]), [v * scale for v in series[k]], ".", alpha=0.5)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_ylabel(ylabel)


def _rolling(values: list[float], width: int) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for start in range(0, len(values) - width + 1, width):
        xs.append(start + width)
        ys.append(sum(values[start:start + width]) / width)
    return xs, ys


def plot_all(raw: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    if "container_start" in raw:
        fig, ax = plt.subplots(figsize=(5, 4))
        _strip(ax, raw["container_start"]["seconds"], 1e3, "docker run --rm ... true (ms)")
        ax.set_title("1. container start")
        save(fig, "container_start")
    if "lifecycle" in raw:
        r = raw["lifecycle"]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        _strip(a, r["c1_seconds"], 1e3, "one endpoint lifecycle (ms)")
        a.set_title("2. lifecycle at concurrency 1")
        for kind, per in r["throughput_per_s"].items():
            levels = sorted(per, key=int)
            b.plot([int(c) for c in levels], [sorted(per[c])[len(per[c]) // 2] for c in levels], "o-", label=kind)
        b.set_xscale("log", base=2)
        b.set_xlabel("concurrent clients")
        b.set_ylabel("lifecycles/s (median)")
        b.legend()
        b.set_title("2. throughput vs concurrency")
        save(fig, "lifecycle")
    if "ipam" in raw:
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, r in raw["ipam"].items():
            if not isinstance(r, dict) or "per_op_seconds" not in r:
                continue
            xs, ys = _rolling(r["per_op_seconds"], 500)
            ax.plot(xs, [y * 1e3 for y in ys], label=f"{label} {r['subnet']}")
        ax.set_xlabel("addresses handed out")
        ax.set_ylabel("ms per address (mean of 500)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.set_title("3. RequestAddress as the pool fills")
        save(fig, "ipam")
    if "scale" in raw:
        r = raw["scale"]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        a.hist([v * 1e3 for v in r["operinfo_seconds"]], bins=50)
        a.set_yscale("log")
        a.set_xlabel("EndpointOperInfo latency (ms) while 16 clients create")
        a.set_title("4. EndpointOperInfo under load")
        _strip(b, {"restart": r["restart_seconds"]}, 1, "restart + reconcile, 1000 endpoints (s)")
        b.set_title("4. restart")
        save(fig, "scale")
    if "coldstart" in raw:
        fig, ax = plt.subplots(figsize=(4, 4))
        _strip(ax, {"cold start": raw["coldstart"]["seconds"]}, 1e3, "process start to first answer (ms)")
        ax.set_title("5. cold start")
        save(fig, "coldstart")
    if "iperf3" in raw:
        fig, ax = plt.subplots(figsize=(5, 4))
        _strip(ax, raw["iperf3"]["gbit_per_s"], 1,
               "iperf3 TCP, container to container (Gbit/s)")
        ax.set_title("6. data plane")
        save(fig, "iperf3")
    return written
