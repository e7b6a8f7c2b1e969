"""Fault injection for integration/test_faults.py: container churn workers, a pynetdrv killer,
dockerd kill/start split in two (so a test can act while it is down), the fault tests' own
subnets (10.224.0.0/15), `pynetdrv check` run as the oracle, and the duplicate-address check.

Counts (containers started, kills injected, ...) are kept in a FaultCounts that each test
prints, and that docs/reliability.md records."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

from integration.cmd import CommandError, wait_for
from integration.constants import IDLE_CMD, IMAGE, LABEL
from integration.docker_objects import Network, docker, docker_json, unique
from integration.dockerd import DockerdProcess, exec_root_of, running_dockerd, tail
from integration.engine_processes import note_killed
from integration.processes import children_of, pid_gone, proc_state
from integration.pynetdrv_daemon import PynetdrvDaemon
from integration.subnet_allocator import SubnetAllocator

#: PYNETDRV_LONG=1: minutes of churn for local use; otherwise the short CI version.
LONG = os.environ.get("PYNETDRV_LONG", "") not in ("", "0")
#: A docker command may wait for Docker's plugin retry (about 15 s per lookup) while pynetdrv is down.
DOCKER_TIMEOUT = 120


def churn_seconds(ci: float, long: float) -> float:
    return long if LONG else ci


class FaultSubnets(SubnetAllocator):
    """/24s of 10.224.0.0/15 only (this suite's range), never one in use on the host or in docker."""

    def __init__(self) -> None:
        super().__init__()
        self._candidates = (ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
                            for second in (224, 225) for third in range(256))


# ---------------------------------------------------------------------------------------------
# Counts


@dataclass
class FaultCounts:
    started: int = 0
    start_failures: int = 0
    removed: int = 0
    pynetdrv_kills: int = 0
    dockerd_kills: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for key, delta in deltas.items():
                setattr(self, key, getattr(self, key) + delta)

    def error(self, text: str) -> None:
        # First line of docker's message, without ids, to group them.
        line = (text.strip().splitlines() or ["?"])[-1][:160]
        with self.lock:
            self.errors[line] += 1

    def report(self, name: str, seconds: float, extra: dict[str, Any] | None = None) -> str:
        figures = {"scenario": name, "seconds": round(seconds, 1), "containers_started": self.started,
                   "start_failures": self.start_failures, "containers_removed": self.removed,
                   "pynetdrv_sigkills": self.pynetdrv_kills, "dockerd_sigkills": self.dockerd_kills,
                   **(extra or {})}
        text = "FAULT-FIGURES " + json.dumps(figures)
        if self.errors:
            text += "\n  start failures by message:\n" + "\n".join(
                f"    {n} x {msg}" for msg, n in self.errors.most_common(8))
        print(text)
        return text


# ---------------------------------------------------------------------------------------------
# Churn


class Churn:
    """`workers` threads, each starting containers on `network` and removing its oldest once it
    holds more than `keep`, until stop(). Failures (pynetdrv or dockerd down) are counted, not
    raised: the oracle is the final state, not each call."""

    def __init__(self, network: Network, counts: FaultCounts, workers: int = 4, keep: int = 2,
                 run_args: tuple[str, ...] = ()) -> None:
        self.network = network
        self.counts = counts
        self.keep = keep
        self.run_args = run_args
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"churn-{i}", daemon=True)
                         for i in range(workers)]
        self.alive: list[str] = []
        self._alive_lock = threading.Lock()

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(DOCKER_TIMEOUT * 3)

    def _work(self) -> None:
        mine: list[str] = []
        rng = random.Random()
        while not self._stop.is_set():
            name = unique("churn")
            out = self._docker("run", "-d", "--name", name, "--label", f"{LABEL}=1", "--network",
                               self.network.name, *self.run_args, IMAGE, *IDLE_CMD)
            if out is not None and out.ok:
                self.counts.add(started=1)
                mine.append(name)
                with self._alive_lock:
                    self.alive.append(name)
            else:
                self.counts.add(start_failures=1)
                self.counts.error(out.output if out is not None else "docker run timed out")
                # A failed `docker run` may leave a created container behind: remove it.
                self._docker("rm", "-f", name)
                if self._stop.wait(rng.uniform(0.2, 1.0)):
                    break
            while len(mine) > self.keep:
                victim = mine.pop(0)
                rm = self._docker("rm", "-f", victim)
                if rm is not None and rm.ok:
                    self.counts.add(removed=1)
                    with self._alive_lock:
                        self.alive.remove(victim)
                else:
                    mine.insert(0, victim)  # retry later (dockerd may be down)
                    break
            self._stop.wait(rng.uniform(0.0, 0.3))

    @staticmethod
    def _docker(*args: str) -> Any:
        try:
            return docker(*args, check=False, timeout=DOCKER_TIMEOUT)
        except CommandError:
            return None


class PynetdrvKiller:
    """SIGKILLs pynetdrv at random moments (every `every` seconds on average) and starts it
    again after a random pause of up to `down` seconds, until stop()."""

    def __init__(self, daemon: PynetdrvDaemon, counts: FaultCounts, every: tuple[float, float] = (2.0, 6.0),
                 down: float = 1.5, seed: int | None = None) -> None:
        self.daemon = daemon
        self.counts = counts
        self.every = every
        self.down = down
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pynetdrv-killer", daemon=True)
        self.failure: BaseException | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        if not self.daemon.running():
            self.daemon.start()
        if self.failure is not None:
            raise AssertionError(f"the pynetdrv killer failed: {self.failure}") from self.failure

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(*self.every)):
                self.daemon.stop(signal.SIGKILL)
                self.counts.add(pynetdrv_kills=1)
                self._stop.wait(self.rng.uniform(0, self.down))
                self.daemon.start()
        except Exception as exc:
            self.failure = exc


# ---------------------------------------------------------------------------------------------
# dockerd, split in two


def kill_dockerd(sig: int = signal.SIGKILL, timeout: float = 60) -> DockerdProcess:
    """Signal the dockerd under test and wait until it (and its children) are gone; returns
    how it was started, for start_dockerd()."""
    proc = running_dockerd()
    kids = children_of(proc.pid)
    with open(proc.log_path, "ab") as log:
        log.write(f"---- fault test: sending {signal.Signals(sig).name} to dockerd {proc.pid}\n".encode())
    if sig == signal.SIGKILL:  # its shims may be orphaned: the teardown ends them
        note_killed(exec_root_of(proc.cmdline))
    os.kill(proc.pid, sig)
    wait_for(lambda: pid_gone(proc.pid), timeout, f"dockerd {proc.pid} to exit", interval=0.2)
    # A surviving containerd is reconnected to by the next dockerd.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: all(proc_state(p) is None for p in [proc.pid, *kids]), 10,
                 f"dockerd {proc.pid}'s children {kids} to be gone")
    return proc


def dockerd_log_tail(proc: DockerdProcess, lines: int = 40) -> str:
    return tail(proc.log_path, lines)


# ---------------------------------------------------------------------------------------------
# The oracle


@dataclass
class CheckRun:
    rc: int
    lines: list[str]

    @property
    def problems(self) -> list[str]:
        return [line for line in self.lines if not line.startswith(("note:", "pynetdrv check:"))]

    @property
    def compared_docker(self) -> bool:
        return bool(self.lines) and "Docker:" in self.lines[-1]

    def text(self) -> str:
        return "\n".join(self.lines)


def pynetdrv_check(daemon: PynetdrvDaemon, *extra: str) -> CheckRun:
    """`pynetdrv check` against the test daemon's state and plugin name, Docker on its default
    socket (every engine the suite runs serves /var/run/docker.sock)."""
    argv = [sys.executable, "-m", "pynetdrv", "check", "--state", str(daemon.state_path),
            "--socket", str(daemon.socket_path), *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stdout.splitlines() + [f"stderr: {line}" for line in proc.stderr.splitlines()]
    return CheckRun(proc.returncode, lines)


def wait_check_clean(daemon: PynetdrvDaemon, timeout: float = 20) -> CheckRun:
    """`pynetdrv check` clean, compared with Docker. Docker finishes some clean-up after its
    commands return: allow it `timeout` seconds."""
    last: list[CheckRun] = []

    def clean() -> bool:
        last[:] = [pynetdrv_check(daemon)]
        return last[0].rc == 0 and last[0].compared_docker

    try:
        wait_for(clean, timeout, "pynetdrv check to be clean", interval=2)
    except AssertionError:
        raise AssertionError(f"pynetdrv check is not clean after {timeout}s (exit {last[0].rc}):\n"
                             f"{last[0].text()}") from None
    print("\n".join(last[0].lines))
    return last[0]


@dataclass
class Oracle:
    """What the final check found before any repair, and what --repair did."""

    found: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        kinds = Counter(" ".join(line.split()[:2]) for line in self.found)
        return {"check_findings_before_repair": dict(kinds), "repair_actions": len(self.repaired)}


def check_clean_or_repairable(daemon: PynetdrvDaemon, timeout: float = 20) -> Oracle:
    """The oracle. `pynetdrv check` must be clean; if it is not, every finding must be one
    `check --repair` can fix (Docker loses calls it retries while pynetdrv restarts: its plugin
    client resends a refused request with an empty body, which pynetdrv must refuse), and after
    one repair - the daemon stopped, as --repair requires - check must be clean."""
    try:
        wait_check_clean(daemon, timeout)
        return Oracle()
    except AssertionError:
        pass
    first = pynetdrv_check(daemon)
    assert first.compared_docker, f"pynetdrv check did not reach Docker:\n{first.text()}"
    problems = first.problems
    summary = first.lines[-1]
    assert f"{len(problems)} problem(s), {len(problems)} repairable" in summary, (
        f"pynetdrv check found problems --repair cannot fix:\n{first.text()}")
    print("pynetdrv check before repair:\n  " + "\n  ".join(first.lines))
    daemon.stop(signal.SIGTERM)
    try:
        fixed = pynetdrv_check(daemon, "--repair")
    finally:
        daemon.start()
    print("pynetdrv check --repair:\n  " + "\n  ".join(fixed.lines))
    assert fixed.rc == 0, f"pynetdrv check --repair left problems:\n{fixed.text()}"
    wait_check_clean(daemon, timeout)
    return Oracle(problems, [line for line in fixed.lines
                             if line.startswith("repair: ") and not line.startswith("repair: fixed: ")])


def running_addresses(network: Network) -> dict[str, str]:
    """{container name: IPv4} of the network's running containers, from each container's own
    inspect (not only the network's view), failing on any address held twice."""
    ids = docker("ps", "-q", "--filter", f"network={network.name}").split()
    found: dict[str, str] = {}
    if ids:
        for info in docker_json("inspect", *ids):
            addr = ((info["NetworkSettings"]["Networks"] or {}).get(network.name) or {}).get("IPAddress")
            if info["State"]["Running"] and addr:
                found[info["Name"].lstrip("/")] = addr
    holders = Counter(found.values())
    dups = {ip: [n for n, a in found.items() if a == ip] for ip, n in holders.items() if n > 1}
    assert not dups, f"addresses held twice among running containers: {dups}"
    return found


def network_addresses_unique(network: Network) -> int:
    """No address twice in the network's own view; returns how many endpoints it lists."""
    info = network.inspect()
    addrs = [c.get("IPv4Address", "").split("/")[0] for c in (info.get("Containers") or {}).values()]
    addrs = [a for a in addrs if a]
    dups = sorted(a for a, n in Counter(addrs).items() if n > 1)
    assert not dups, f"{network.name}: addresses held twice in Docker's view: {dups}"
    return len(addrs)
