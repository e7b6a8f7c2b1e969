"""The benchmarks that need no dockerd, run INSIDE a throwaway network namespace (the
orchestrator starts ``python -m bench.worker NAME ...`` under ``ip netns exec``).  Each starts
its own pynetdrv (socket, state and log in a temp dir) and prints nothing: figures and raw
numbers go to the ``--result`` JSON file."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute

from bench import api_flows as flows
from bench.daemon import SERVING, Daemon, PluginClient
from bench.profile import Sampler, summarize_profile
from bench.report import Figure
from bench.stats import duplicates, gaps, ratio, run_interleaved_async, summarize, window_ratio

Result = tuple[list[Figure], dict[str, Any]]


def mm(samples: list[float], scale: float = 1.0, unit: str = "") -> str:
    """``median (min-max) unit`` of samples times ``scale``."""
    s = summarize(samples)
    return f"{s.median * scale:.3g} ({s.min * scale:.3g}-{s.max * scale:.3g}) {unit}".strip()


async def profiled(daemon: Daemon, workdir: Path, name: str, enabled: bool,
                   work: Callable[[], Awaitable[Any]]) -> str | None:
    """Run ``work`` once more under py-spy (not timed) and return the profile summary."""
    if not enabled:
        return None
    out = workdir / f"profile-{name}.txt"
    sampler = Sampler(daemon.pid, out)
    await asyncio.sleep(0.5)  # py-spy attaches
    try:
        await work()
    finally:
        sampler.stop()
    return summarize_profile(out.read_text()) if out.exists() else "py-spy wrote no profile"


# -- 2. endpoint lifecycle -----------------------------------------------------------------

async def bench_lifecycle(daemon: Daemon, client: PluginClient, quick: bool, workdir: Path, profile: bool) -> Result:
    net = await flows.create_network(client, "10.240.0.0/16")
    rounds = 20 if quick else 100
    levels = [1, 16] if quick else [1, 2, 4, 8, 16]
    per_level = 32 if quick else 96
    repeats = 1 if quick else 3
    async with AsyncIPRoute() as ipr:
        bare = flows.BareKernel(ipr, "bkbr-bench0")
        await bare.setup()
        calls = flows.CallTimes()
        times = await run_interleaved_async(
            {"api": lambda: flows.api_lifecycle(client, net, calls), "bare": bare.lifecycle}, rounds, warmup=3)
        (u0, s0), n_cpu = daemon.cpu_times(), 50
        await _repeat(lambda: flows.api_lifecycle(client, net), n_cpu)
        u1, s1 = daemon.cpu_times()
        cpu_user, cpu_sys = (u1 - u0) / n_cpu, (s1 - s0) / n_cpu
        cpu_per_lifecycle = cpu_user + cpu_sys
        b0 = os.times()
        await _repeat(bare.lifecycle, n_cpu)
        b1 = os.times()
        bare_user, bare_sys = (b1.user - b0.user) / n_cpu, (b1.system - b0.system) / n_cpu
        noop = await run_interleaved_async({"noop": lambda: flows.plugin_noop(client)}, rounds * 3, warmup=5)

        async def throughput(kind: str, conc: int) -> float:
            async def one_worker() -> None:
                for _ in range(per_level // conc):
                    await (flows.api_lifecycle(client, net) if kind == "api" else bare.lifecycle())
            t0 = time.perf_counter()
            await asyncio.gather(*(one_worker() for _ in range(conc)))
            return (per_level // conc) * conc / (time.perf_counter() - t0)

        thr: dict[str, dict[int, list[float]]] = {"api": {c: [] for c in levels}, "bare": {c: [] for c in levels}}
        for _ in range(repeats):
            for c in levels:
                for kind in ("api", "bare"):  # interleaved per level
                    thr[kind][c].append(await throughput(kind, c))
        prof = await profiled(daemon, workdir, "lifecycle", profile,
                              lambda: _repeat(lambda: flows.api_lifecycle(client, net), 300))
    r = ratio(times["api"], times["bare"])
    api_med = {c: statistics.median(v) for c, v in thr["api"].items()}
    bare_med = {c: statistics.median(v) for c, v in thr["bare"].items()}
    top = max(levels)
    call_detail = ", ".join(f"{k} {statistics.median(v) * 1e3:.2f}" for k, v in calls.by_call.items())
    figures = [
        Figure("lifecycle", "API / bare kernel, c=1", r, "x", "<=", 1.5,
               f"API {mm(times['api'], 1e3, 'ms')} vs bare {mm(times['bare'], 1e3, 'ms')}"),
        Figure("lifecycle", "per call median (ms)", sum(statistics.median(v) for v in calls.by_call.values()) * 1e3,
               "ms", detail=call_detail),
        Figure("lifecycle", "daemon CPU per lifecycle", cpu_per_lifecycle * 1e3, "ms",
               detail=f"user {cpu_user * 1e3:.1f} + system {cpu_sys * 1e3:.1f} ms (50 sequential lifecycles); "
               f"bare: user {bare_user * 1e3:.1f} + system {bare_sys * 1e3:.1f} ms"),
        Figure("lifecycle", "HTTP round trip (Plugin.Activate)", statistics.median(noop["noop"]) * 1e3, "ms",
               detail=mm(noop["noop"], 1e3, "ms")),
        Figure("lifecycle", f"API throughput c={top} / c=1", api_med[top] / api_med[1], "x", ">=", 1.0,
               "API lifecycles/s " + ", ".join(f"c{c} {v:.0f}" for c, v in api_med.items())),
        Figure("lifecycle", f"bare throughput c={top} / c=1", bare_med[top] / bare_med[1], "x",
               detail="bare lifecycles/s " + ", ".join(f"c{c} {v:.0f}" for c, v in bare_med.items())),
    ]
    raw = {
        "c1_seconds": times,
        "per_call_seconds": calls.by_call,
        "noop_seconds": noop["noop"],
        "daemon_cpu_seconds_per_lifecycle": {"user": cpu_user, "system": cpu_sys},
        "bare_cpu_seconds_per_lifecycle": {"user": bare_user, "system": bare_sys},
        "throughput_per_s": {k: {str(c): v for c, v in d.items()} for k, d in thr.items()},
        "profile": prof,
    }
    return figures, raw


async def _repeat(fn: Callable[[], Awaitable[Any]], n: int) -> None:
    for _ in range(n):
        await fn()


# -- 3. IPAM at scale ------------------------------------------------------------------------

async def fill(client: PluginClient, pool_id: str, count: int, conc: int) -> dict[str, Any]:
    """``count`` RequestAddress calls from ``conc`` clients; per-call durations (sequential) or
    completion gaps (concurrent), the addresses, and whether one more is refused."""
    addresses: list[str] = []
    stamps: list[float] = []
    durations: list[float] = []
    remaining = [count]

    async def one() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            t = time.perf_counter()
            r = await client.call("IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": {}})
            done = time.perf_counter()
            durations.append(done - t)
            stamps.append(done)
            addresses.append(r["Address"])

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conc)))
    elapsed = time.perf_counter() - t0
    per_op = durations if conc == 1 else gaps(stamps, t0)
    try:
        await client.call("IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": {}})
        refused_when_full = False
    except Exception:
        refused_when_full = True
    return {"count": len(addresses), "elapsed": elapsed, "per_op": per_op, "duplicates": duplicates(addresses),
            "refused_when_full": refused_when_full, "latencies": durations}


async def bench_ipam(daemon: Daemon, client: PluginClient, quick: bool, workdir: Path, profile: bool) -> Result:
    v4_prefix = 22 if quick else 16
    count = 2 ** (32 - v4_prefix) - 2
    window = 250 if quick else 2000
    cases = [("v4 seq", f"10.241.0.0/{v4_prefix}", 1), ("v4 c16", f"10.242.0.0/{v4_prefix}", 16),
             ("v6 seq", "fdbe:5f00:1::/64", 1), ("v6 c16", "fdbe:5f00:2::/64", 16)]
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    for label, subnet, conc in cases:
        pool = await client.call("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": subnet, "Options": {}})
        cpu0 = daemon.cpu_seconds()
        res = await fill(client, pool["PoolID"], count, conc)
        cpu_per = (daemon.cpu_seconds() - cpu0) / res["count"]
        rate = res["count"] / res["elapsed"]
        wr = window_ratio(res["per_op"], window)
        full = (
            ""
            if label.startswith("v6")
            else (", then refused" if res["refused_when_full"] else ", NOT refused when full")
        )
        figures += [
            Figure(
                "ipam",
                f"{label} rate ({subnet})",
                rate,
                "addr/s",
                ">=" if conc == 1 else None,
                5000 if conc == 1 else None,
                f"{res['count']} addresses in {res['elapsed']:.1f} s, latency {mm(res['latencies'], 1e3, 'ms')}{full}, "
                f"daemon CPU {cpu_per * 1e3:.2f} ms/address",
            ),
            Figure("ipam", f"{label} last/first {window}", wr, "x", "<=", 1.2),
            Figure("ipam", f"{label} duplicates", res["duplicates"], "", "<=", 0),
        ]
        raw[label] = {
            "subnet": subnet,
            "concurrency": conc,
            "rate": rate,
            "window_ratio": wr,
            "duplicates": res["duplicates"],
            "daemon_cpu_seconds_per_address": cpu_per,
            "refused_when_full": res["refused_when_full"],
            "per_op_seconds": res["per_op"],
        }
        if not label.startswith("v6") and not res["refused_when_full"]:
            figures.append(Figure("ipam", f"{label} refused when full", 0, "", ">=", 1))
    if profile:
        pool = await client.call(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.243.0.0/20", "Options": {}}
        )
        raw["profile"] = await profiled(daemon, workdir, "ipam", True,
                                        lambda: fill(client, pool["PoolID"], 3000, 1))
    return figures, raw


# -- 4. one host, 1000 endpoints -------------------------------------------------------------

async def bench_scale(daemon: Daemon, client: PluginClient, quick: bool, workdir: Path, profile: bool) -> Result:
    n_endpoints, creators = (300 if quick else 1000), 16
    restarts = 2 if quick else 5
    net = await flows.create_network(client, "10.244.0.0/16")
    rss_empty = daemon.rss_mib()
    created: list[str] = []
    queue = list(range(n_endpoints))
    oper: list[float] = []
    creating = [True]

    async def creator() -> None:
        while queue:
            queue.pop()
            ep, _ = await flows.create_endpoint(client, net)
            created.append(ep)

    async def prober() -> None:
        probe = PluginClient(daemon.socket_path, connections=1)
        try:
            while creating[0]:
                if not created:
                    await asyncio.sleep(0.001)
                    continue
                ep = random.choice(created)
                t = time.perf_counter()
                await probe.call("NetworkDriver.EndpointOperInfo", {"NetworkID": net.network_id, "EndpointID": ep})
                oper.append(time.perf_counter() - t)
        finally:
            await probe.close()

    t0 = time.perf_counter()
    probing = asyncio.create_task(prober())
    await asyncio.gather(*(creator() for _ in range(creators)))
    create_s = time.perf_counter() - t0
    creating[0] = False
    await probing
    rss_full = daemon.rss_mib()
    idle: list[float] = []
    for _ in range(200):  # the same call with nothing else going on, for comparison
        t = time.perf_counter()
        await client.call("NetworkDriver.EndpointOperInfo", {"NetworkID": net.network_id, "EndpointID": created[0]})
        idle.append(time.perf_counter() - t)
    await client.close()
    restart_s = []
    for _ in range(restarts):
        daemon.stop()
        restart_s.append(daemon.start())
    client2 = PluginClient(daemon.socket_path)
    try:
        info = await client2.call(
            "NetworkDriver.EndpointOperInfo", {"NetworkID": net.network_id, "EndpointID": created[0]}
        )
        async with AsyncIPRoute() as ipr:
            veths = len([1 async for link in await ipr.link("dump") if str(link.get("ifname")).startswith("pnve-")])
    finally:
        await client2.close()
    prof = None
    if profile:  # profile of a restart: sample the new process from its start
        daemon.stop()
        t = daemon.spawn()
        sampler = Sampler(daemon.pid, workdir / "profile-restart.txt", rate=1000)
        daemon.wait_ready(call=SERVING)
        sampler.stop()
        prof = (f"(restart took {time.perf_counter() - t:.2f} s under py-spy)\n"
                + summarize_profile((workdir / "profile-restart.txt").read_text()))
    p99 = summarize(oper).p99
    figures = [
        Figure("scale", f"RSS with {n_endpoints} endpoints", rss_full, "MiB", "<=", 100,
               f"{rss_empty:.1f} MiB with none; {len(created)} created by {creators} clients in {create_s:.1f} s"),
        Figure("scale", "restart + reconcile", statistics.median(restart_s), "s", "<=", 2.0,
               f"{mm(restart_s, 1, 's')}; {veths} veths after, EndpointOperInfo ok: {bool(info.get('Value'))}"),
        Figure("scale", f"EndpointOperInfo p99, {creators} creators", p99 * 1e3, "ms", "<=", 5.0,
               f"{len(oper)} calls, {mm(oper, 1e3, 'ms')}; idle p99 {summarize(idle).p99 * 1e3:.2f} ms"),
    ]
    raw = {
        "rss_mib_empty": rss_empty,
        "rss_mib_full": rss_full,
        "create_seconds": create_s,
        "restart_seconds": restart_s,
        "operinfo_seconds": oper,
        "operinfo_idle_seconds": idle,
        "veths_after_restart": veths,
        "profile": prof,
    }
    return figures, raw


# -- 5. cold start ---------------------------------------------------------------------------

def bench_coldstart(daemon: Daemon, quick: bool, workdir: Path, profile: bool) -> Result:
    runs = 5 if quick else 15
    samples, serving = [], []
    for _ in range(runs + 1):
        first, ready = daemon.start_timed()
        samples.append(first)
        serving.append(ready)
        daemon.stop()
    # The first run also creates the state file and warms the page cache.
    samples, serving = samples[1:], serving[1:]
    raw: dict[str, Any] = {"seconds": samples, "serving_seconds": serving}
    t0 = time.perf_counter()
    import subprocess

    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare_python = time.perf_counter() - t0
    raw["python_c_pass_seconds"] = bare_python
    if profile:
        # What serve imports before its socket answers (cli, server, the store), then what it
        # imports in a worker thread before it serves every call.
        modules = ("pynetdrv.cli, pynetdrv.server, pynetdrv.store.sqlite, pynetdrv.reconcile, "
                   "pynetdrv.dataplane.netlink, pynetdrv.firewall.iptables, pynetdrv.api.plugin")
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {modules}"],
                              capture_output=True, text=True, check=True)
        raw["profile"] = top_imports(done.stderr)
    figures = [Figure("coldstart", "process start to first answer", statistics.median(samples) * 1e3, "ms", "<=", 300,
                      f"{mm(samples, 1e3, 'ms')}; bare `python -c pass` {bare_python * 1e3:.0f} ms"),
               Figure("coldstart", "process start to serving every call", statistics.median(serving) * 1e3, "ms",
                      detail=f"{mm(serving, 1e3, 'ms')}; GetCapabilities, answered once reconcile is done "
                             "(calls before that wait, Activate excepted)")]
    return figures, raw


def top_imports(importtime: str, top: int = 15) -> str:
    """``-X importtime`` output -> the top-level imports by cumulative time."""
    rows = []
    for line in importtime.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        name = parts[2]
        if name.startswith("  "):  # only the first nesting levels
            continue
        rows.append((int(parts[1]), name))
    rows.sort(reverse=True)
    return "\n".join(f"{us / 1000:8.1f} ms  {name}" for us, name in rows[:top])


# -- entry -----------------------------------------------------------------------------------

async def run_async(name: str, daemon: Daemon, quick: bool, workdir: Path, profile: bool) -> Result:
    daemon.start()
    client = PluginClient(daemon.socket_path)
    try:
        fn = {"lifecycle": bench_lifecycle, "ipam": bench_ipam, "scale": bench_scale}[name]
        return await fn(daemon, client, quick, workdir, profile)
    finally:
        await client.close()
        daemon.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    p.add_argument("name", choices=["lifecycle", "ipam", "scale", "coldstart"])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    wd: Path = args.workdir
    daemon = Daemon(wd / "pynetdrv-bench.sock", wd / "state.db", wd / "pynetdrv.log")
    try:
        if args.name == "coldstart":
            figures, raw = bench_coldstart(daemon, args.quick, wd, args.profile)
        else:
            figures, raw = asyncio.run(run_async(args.name, daemon, args.quick, wd, args.profile))
    finally:
        daemon.stop()
    args.result.write_text(json.dumps({"figures": [f.as_dict() for f in figures], "raw": raw}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
