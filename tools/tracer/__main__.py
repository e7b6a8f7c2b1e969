"""python -m tools.tracer record --docker CLIENT --out FILE [--scenario calls|daemon-restart]

Runs the stand-in plugin on /run/docker/plugins/tracer.sock, drives the dockerd that answers
on the default socket through the scenario's user actions with CLIENT, and writes every call
dockerd made to the plugin to FILE (JSONL). Needs root. Hold the integration lock while it
runs (tools/tracer/record-engines.sh does, for every engine)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO

from aiohttp import web

from tools.tracer.recorder import Recorder, StandInIpam, build_app
from tools.tracer.script import (
    ALL_NETWORKS,
    CONTAINERS,
    DOCKERD_KILL,
    DOCKERD_TERM,
    IMAGE,
    PLUGIN_RESTART,
    SCENARIOS,
    Step,
)

DEFAULT_SOCKET = Path("/run/docker/plugins/tracer.sock")


class TraceError(Exception):
    pass


async def docker(client: str, *args: str, check: bool = True, timeout: float = 120) -> str:
    proc = await asyncio.create_subprocess_exec(client, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TraceError(f"`docker {' '.join(args)}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise TraceError(f"`docker {' '.join(args)}` failed ({proc.returncode}): {err.decode().strip()}")
    return out.decode().strip()


class Plugin:
    """The stand-in plugin on its socket; restart() is a new process's worth of state."""

    def __init__(self, recorder: Recorder, sock: Path) -> None:
        self.recorder, self.sock = recorder, sock
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        self.runner = web.AppRunner(build_app(self.recorder, StandInIpam()))
        await self.runner.setup()
        await web.UnixSite(self.runner, str(self.sock)).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.sock.unlink(missing_ok=True)

    async def restart(self) -> None:
        await self.stop()
        await asyncio.sleep(1)
        await self.start()


def claim_socket(sock: Path) -> None:
    """Refuse to take over a socket someone listens on; drop a stale one."""
    if not sock.exists():
        return
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(sock))
    except OSError:
        sock.unlink()
    else:
        raise TraceError(f"{sock} is in use: another tracer runs")
    finally:
        s.close()


async def settle(recorder: Recorder, quiet: float = 0.7, limit: float = 10) -> None:
    """Wait until dockerd has made no call for `quiet` seconds (calls made after a command
    returns still belong to its step)."""
    start = time.monotonic()
    await asyncio.sleep(quiet)
    while time.monotonic() - start < limit:
        if time.monotonic() - recorder.last_call >= quiet:
            break
        await asyncio.sleep(0.1)


async def wait_running(client: str, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await docker(client, "inspect", "-f", "{{.State.Running}}", name, check=False, timeout=15) == "true":
            return
        await asyncio.sleep(0.5)
    raise TraceError(f"container {name} is not running again {timeout:.0f} s after the dockerd restart")


def restart_dockerd(client: str, sig: signal.Signals) -> None:
    # The integration suite's way: same command line, environment and log, stale pid files dropped.
    os.environ["PYNETDRV_IT_DOCKER"] = client
    from integration.dockerd import restart_dockerd as restart

    restart(sig)


async def cleanup(client: str) -> None:
    await docker(client, "rm", "-f", *CONTAINERS, check=False)
    for net in ALL_NETWORKS:
        await docker(client, "network", "rm", net, check=False)


async def run_step(step: Step, client: str, image: str, plugin: Plugin) -> None:
    if step.special == PLUGIN_RESTART:
        await plugin.restart()
    elif step.special in (DOCKERD_TERM, DOCKERD_KILL):
        sig = signal.SIGTERM if step.special == DOCKERD_TERM else signal.SIGKILL
        await asyncio.to_thread(restart_dockerd, client, sig)
    elif step.special:
        raise TraceError(f"unknown special step {step.special!r}")
    else:
        await docker(client, *(image if a == IMAGE else a for a in step.args))
    if step.wait_running:
        await wait_running(client, step.wait_running)


async def record(client: str, f: IO[str], scenario: str, image: str, sock: Path) -> str:
    """Run the scenario, writing the trace to f; returns the engine's version."""
    claim_socket(sock)
    version = await docker(client, "version", "--format", "{{.Server.Version}}")
    await docker(client, "image", "inspect", image)  # fail early: scripts/lib-docker.sh ensure_busybox_image
    recorder = Recorder(f)
    recorder.recording = False
    plugin = Plugin(recorder, sock)
    await plugin.start()
    try:
        await cleanup(client)
        await settle(recorder)
        recorder.recording = True
        recorder.write({"tracer": {"engine": version, "scenario": scenario, "client": client, "image": image}})
        for step in SCENARIOS[scenario]:
            text = step.text(image)
            print(f"==> tracer: {text}", flush=True)
            recorder.step(text)
            await run_step(step, client, image, plugin)
            await settle(recorder)
    finally:
        recorder.recording = False
        try:
            await cleanup(client)
        finally:
            await plugin.stop()
    print(f"==> tracer: {recorder.calls} calls of Docker {version} recorded", flush=True)
    return version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.tracer", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="record the calls of the dockerd on the default socket")
    r.add_argument("--docker", default="/usr/bin/docker", help="the docker client of that engine")
    r.add_argument("--out", type=Path, required=True, help="the JSONL trace to write")
    r.add_argument("--scenario", choices=sorted(SCENARIOS), default="calls")
    r.add_argument("--image", default=IMAGE, help=f"a busybox image present in the engine (default {IMAGE})")
    r.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, help="the plugin socket; its name is the driver's")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("tracer: must run as root (it serves a plugin socket under /run/docker/plugins)", file=sys.stderr)
        return 1
    # Written next to the target and renamed at the end: a failed run leaves the old trace.
    tmp = args.out.with_name(args.out.name + ".part")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "w") as f:
            asyncio.run(record(args.docker, f, args.scenario, args.image, args.socket))
    except TraceError as e:
        print(f"tracer: {e} (partial trace: {tmp})", file=sys.stderr)
        return 1
    tmp.replace(args.out)
    print(f"==> tracer: written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
