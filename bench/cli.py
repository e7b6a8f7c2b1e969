"""Run the benchmarks, print the table, write the JSON and the plots."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import netns
from bench.report import Figure, markdown, table, write_json

REPO = Path(__file__).resolve().parent.parent
NETNS_BENCHES = ("lifecycle", "ipam", "scale", "coldstart")
DOCKER_BENCHES = ("container_start", "iperf3")
ALL = ("container_start", "lifecycle", "ipam", "scale", "coldstart", "iperf3", "multihost")
#: Left out of --quick unless named: it builds the 3-host lab and a swarm (bench/multihost.py).
NOT_QUICK = ("multihost",)
#: Upper bound on each benchmark's worker (full run); quick runs get a fifth.
WORKER_TIMEOUT = 1200


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    p.add_argument("names", nargs="*", metavar="NAME", help="run only these (the same as --only)")
    p.add_argument("--quick", action="store_true",
                   help=f"short run (1-3 minutes), e.g. for CI; leaves out {', '.join(NOT_QUICK)} unless named")
    p.add_argument("--only", nargs="+", choices=ALL, metavar="NAME", help=f"run only these ({', '.join(ALL)})")
    p.add_argument("--out", type=Path,
                   help="where results.json and the PNGs go (default docs/benchmarks; "
                   "with --quick /var/tmp/pynetdrv-bench-quick, multihost alone /var/tmp/pynetdrv-bench-multihost, "
                   "so neither overwrites the full run's)")
    p.add_argument("--profile", action="store_true",
                   help="also sample the daemon with py-spy (and imports with -X importtime); "
                   "summaries go to the JSON and to OUT/profiles/")
    p.add_argument("--ci", action="store_true", help="reporting only: exit 0 even if a benchmark fails to run")
    p.add_argument("--anchor", metavar="REV",
                   help="also run the selected namespace benchmarks on a checkout of REV (git worktree under "
                   "/var/tmp), interleaved with this checkout's runs, and print both side by side")
    p.add_argument("--rounds", type=int, default=3, help="with --anchor: runs per side (default 3)")
    p.add_argument("--lock-timeout", type=float, default=None,
                   help="seconds to wait for the dockerd integration lock (default 1200, 300 with --quick)")
    return p


def _meta(args: argparse.Namespace, docker_version: str | None) -> dict[str, Any]:
    def sh(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO).stdout.strip()
        except OSError:
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 -m bench " + " ".join(sys.argv[1:]),
        "git_commit": sh("git", "rev-parse", "--short", "HEAD")
        + (" (dirty)" if sh("git", "status", "--porcelain") else ""),
        "machine": f"{os.cpu_count()} x {cpu}, {int(mem) // 1024} MiB RAM",
        "kernel": platform.release(),
        "os": sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": platform.python_version(),
        "docker": docker_version,
        "quick": args.quick,
    }


def run_netns_bench(name: str, quick: bool, profile: bool, repo: Path = REPO) -> dict[str, Any]:
    """One worker in a new namespace with its own pynetdrv (of the checkout ``repo``); returns its
    figures and raw numbers."""
    timeout = WORKER_TIMEOUT // 5 if quick else WORKER_TIMEOUT
    # The checkout's tree first on sys.path, for the worker and the daemon it starts.
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with tempfile.TemporaryDirectory(prefix="pynetdrv-bench-", dir="/var/tmp") as tmp, netns.throwaway_netns() as ns:
        result = Path(tmp) / "result.json"
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "bench.worker", name,
                "--workdir", tmp, "--result", str(result)]
        argv += ["--quick"] * quick + ["--profile"] * profile
        done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or not result.exists():
            log = (Path(tmp) / "pynetdrv.log")
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(f"worker {name} exited {done.returncode}: {done.stderr.strip()[-1500:]}\n{tail}")
        return dict(json.loads(result.read_text()))


def _figures(dicts: list[dict[str, Any]]) -> list[Figure]:
    return [Figure(**{k: v for k, v in d.items() if k != "met"}) for d in dicts]


def selection(named: list[str], quick: bool) -> list[str]:
    """The benchmarks to run, in run order: those named, else all (--quick: all but NOT_QUICK)."""
    if unknown := [n for n in named if n not in ALL]:
        raise ValueError(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(ALL)})")
    return [b for b in ALL if b in named or (not named and not (quick and b in NOT_QUICK))]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        selected = selection([*(args.only or []), *args.names], args.quick)
    except ValueError as e:
        parser.error(str(e))
    if args.anchor:
        return _anchored(args, [b for b in selected if b in NETNS_BENCHES])
    out: Path = args.out or (Path("/var/tmp/pynetdrv-bench-quick") if args.quick
                             else Path("/var/tmp/pynetdrv-bench-multihost") if selected == ["multihost"]
                             else REPO / "docs" / "benchmarks")
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    durations: dict[str, float] = {}
    loads: dict[str, float] = {}  # 1-minute load average as each benchmark starts: how busy the machine was
    docker_version = None
    for ns in netns.leftovers():
        subprocess.run(["ip", "netns", "del", ns], check=False)

    def record(name: str, result: dict[str, Any]) -> None:
        figures.extend(_figures(result["figures"]))
        raw[name] = result["raw"]

    for name in [b for b in selected if b in NETNS_BENCHES]:
        print(f"==> bench: {name}", flush=True)
        t0 = time.monotonic()
        loads[name] = os.getloadavg()[0]
        try:
            record(name, run_netns_bench(name, args.quick, args.profile))
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"
        durations[name] = time.monotonic() - t0

    docker_selected = [b for b in selected if b in DOCKER_BENCHES]
    if docker_selected:
        loads["dockerd"] = os.getloadavg()[0]
        docker_version = _run_docker_benches(docker_selected, args, record, errors, durations)
    if "multihost" in selected:
        loads["multihost"] = os.getloadavg()[0]
        _run_multihost(args, out, record, errors, durations)
        docker_version = docker_version or raw.get("multihost", {}).get("engine")

    meta = _meta(args, docker_version)
    meta["seconds_per_benchmark"] = {k: round(v, 1) for k, v in durations.items()}
    meta["load_average_at_start"] = {k: round(v, 2) for k, v in loads.items()}
    print()
    print(table(figures, errors))
    write_json(out / "results.json", meta, figures, raw, errors)
    (out / "results.md").write_text(markdown(meta, figures, errors))
    try:
        from bench.plots import plot_all

        plot_all(raw, out)
    except Exception as e:
        errors["plots"] = f"{type(e).__name__}: {e}"
        print(f"plots failed: {e}", file=sys.stderr)
    _write_profiles(raw, out / "profiles")
    print(f"\nraw numbers: {out}; {sum(durations.values()):.0f} s in benchmarks")
    for name, err in errors.items():
        print(f"bench {name} failed: {err}", file=sys.stderr)
    return 0 if args.ci or not errors else 1


def _anchored(args: argparse.Namespace, names: list[str]) -> int:
    """``--anchor REV``: each selected namespace benchmark ``--rounds`` times on REV and on this
    checkout, interleaved; both sides' figures side by side, and the JSON of every run."""
    from bench.anchor import anchor_checkout, compare, render, run_sides

    if not names:
        print(f"--anchor compares namespace benchmarks only ({', '.join(NETNS_BENCHES)})", file=sys.stderr)
        return 2
    out: Path = args.out or Path("/var/tmp/pynetdrv-bench-anchor")
    this = "this " + _meta(args, None)["git_commit"]
    for ns in netns.leftovers():
        subprocess.run(["ip", "netns", "del", ns], check=False)
    with anchor_checkout(REPO, args.anchor) as (tree, sha):
        anchor = f"anchor {sha}"
        results = run_sides(names, {anchor: tree, this: REPO}, args.rounds,
                            lambda name, repo: run_netns_bench(name, args.quick, False, repo))
    text = render(compare(results, anchor, this))
    print()
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "anchor.txt").write_text(text + "\n")
    (out / "anchor.json").write_text(json.dumps(
        {"meta": _meta(args, None), "anchor": args.anchor, "order": "interleaved, anchor first in each round",
         "results": {n: {side: [r["figures"] for r in runs] for side, runs in sides.items()}
                     for n, sides in results.items()}}, indent=1))
    print(f"\nboth sides' figures: {out}/anchor.json")
    return 0


def _run_docker_benches(selected: list[str], args: argparse.Namespace, record: Any, errors: dict[str, str],
                        durations: dict[str, float]) -> str | None:
    from bench import docker_benches as db
    from bench import docker_env as de

    timeout = args.lock_timeout if args.lock_timeout is not None else (300 if args.quick else 1200)
    version = None
    print(f"==> bench: waiting for {de.LOCK} (dockerd is shared with the integration tests)", flush=True)
    try:
        with de.integration_lock(timeout):
            version = de.ensure_engine()
            with db.networks() as nets:
                for name in selected:
                    print(f"==> bench: {name}", flush=True)
                    t0 = time.monotonic()
                    fn = db.bench_container_start if name == "container_start" else db.bench_iperf
                    try:
                        figs, raw = fn(nets, args.quick)
                        record(name, {"figures": [f.as_dict() for f in figs], "raw": raw})
                    except Exception as e:
                        errors[name] = f"{type(e).__name__}: {e}"
                    durations[name] = time.monotonic() - t0
    except Exception as e:
        for name in selected:
            errors.setdefault(name, f"{type(e).__name__}: {e}")
        traceback.print_exc()
    return version


def _run_multihost(args: argparse.Namespace, out: Path, record: Any, errors: dict[str, str],
                   durations: dict[str, float]) -> None:
    """The 3-host lab against swarm overlay (bench/multihost.py), under the integration lock the
    lab's other users take (after the dockerd benchmarks have released it)."""
    from bench import docker_env as de
    from bench import multihost

    timeout = args.lock_timeout if args.lock_timeout is not None else (300 if args.quick else 1200)
    print(f"==> bench: multihost, waiting for {de.LOCK} (the lab is shared with the integration tests)", flush=True)
    t0 = time.monotonic()
    try:
        with de.integration_lock(timeout):
            figures, raw, part_errors = multihost.run(args.quick, out)
        record("multihost", {"figures": [f.as_dict() for f in figures], "raw": raw})
        errors.update(part_errors)
    except Exception as e:
        errors["multihost"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    durations["multihost"] = time.monotonic() - t0


def _write_profiles(raw: dict[str, Any], out: Path) -> None:
    profiles = {name: r.get("profile") for name, r in raw.items() if isinstance(r, dict) and r.get("profile")}
    if not profiles:
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in profiles.items():
        (out / f"{name}.txt").write_text(str(text) + "\n")
    print(f"profiles: {out}")
