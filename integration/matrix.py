"""`python -m integration.matrix [PYTEST ARGS]`: the test runs of ./scripts/test, one per
engine (engines.py), as root, after scripts/test has installed the apt packages and the venv.

- PYNETDRV_ENGINES picks the engines, in order (default "20.10 26.1 28.5").
- The first engine runs tests/unit and tests/netns (PYNETDRV_TEST_WORKERS parallel workers,
  default 4), then the integration tests one at a time; the others run the integration tests
  only, without the tests marked `once` (conftest.py deselects them on PYNETDRV_IT_ENGINE_INDEX>0);
  tests marked `first_and_last` run on the first and the last engine (PYNETDRV_IT_LAST_ENGINE).
- Arguments go to pytest; if they name test paths, those run once, on the first engine only.
- Each pytest run is bounded by PYNETDRV_TEST_RUN_TIMEOUT seconds (default 1500).
- pytest sees PYNETDRV_IT_DOCKER (the engine's client), PYNETDRV_IT_EXEC_ROOT, PYNETDRV_IT_ENGINE,
  PYNETDRV_IT_ENGINE_INDEX, PYNETDRV_IT_LAST_ENGINE (the name of the run's last engine) and
  PYNETDRV_IT_COMPOSE (Docker Compose v2, a standalone binary).
- Switching engines stops and starts dockerd: the integration lock is held for the whole run
  (PYNETDRV_IT_LOCK_HELD tells conftest.py); the machine's dockerd is recorded first and
  started again at the end if it ran before.
- After each engine's runs, nothing of a stopped engine may be left running, and no shim of the
  running one may be without a container (engine_processes.py): else that engine's run fails.
- Prints one summary line per engine; exits with the first failing run's exit code (0: all
  passed); interrupted: 130 (SIGINT) / 143 (SIGTERM), after stopping the engines it started.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO

from integration.busybox_image import ensure_busybox_image
from integration.engine_packages import fetch_unpacked
from integration.engine_processes import engine_processes, orphan_shims, reap
from integration.engines import (
    COMPOSE,
    DEFAULT_ENGINES,
    ENGINES,
    Engine,
    SystemDockerd,
    check_nothing_left,
    parse_engines,
    server_version,
    start,
    stop,
)

REPO = Path(__file__).resolve().parent.parent
LOCK = Path("/run/lock/pynetdrv-integration.lock")
LOCK_WAIT = 20 * 60
DEFAULT_PATHS = ("tests/unit", "tests/netns", "integration")


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


class Fatal(Exception):
    """Stop the whole run with this message (set-up failed)."""


def take_lock() -> IO[str]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "a")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"lock: another integration run holds {LOCK}; waiting (at most {LOCK_WAIT // 60} min)")
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Fatal(f"another integration run held {LOCK} for {LOCK_WAIT // 60} min") from None
                time.sleep(1)
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    os.environ["PYNETDRV_IT_LOCK_HELD"] = str(os.getpid())
    return lock


def names_paths(args: list[str]) -> bool:
    return any(not a.startswith("-") and Path(a.split("::", 1)[0]).exists() for a in args)


def runs_integration(args: list[str], explicit: bool) -> bool:
    if not explicit:
        return (REPO / "integration").exists()
    here = REPO / "integration"
    for arg in args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if not arg.startswith("-") and path.exists() and (path == here or here in path.parents):
            return True
    return False


def plan_runs(index: int, args: list[str], explicit: bool, workers: str) -> list[list[str]]:
    """The pytest argument lists for the engine at `index`."""
    if explicit:
        return [args]
    if index > 0:
        return [["integration", *args]]
    paths = [p for p in DEFAULT_PATHS if (REPO / p).exists()]
    # The unit suite alone carries the coverage floor (fail_under in pyproject.toml).
    runs = [["-n", workers, "--cov=pynetdrv", "--cov-report=term", p, *args] if p == "tests/unit"
            else ["-n", workers, p, *args] for p in paths if p != "integration"]
    if "integration" in paths:
        runs.append(["integration", *args])
    return runs


def known_container_ids(engine: Engine) -> set[str] | None:
    """Full ids of all the engine's containers; None if it does not answer."""
    out = subprocess.run([str(engine.client), "ps", "-aq", "--no-trunc"], capture_output=True, text=True,
                         timeout=60, check=False)
    return set(out.stdout.split()) if out.returncode == 0 else None


def leftovers(current: Engine | None, all_engines: list[Engine]) -> list[str]:
    """What of the suite's engines runs that should not - every process of an engine other
    than `current`, shims of `current` without a container - ended here; returns descriptions."""
    found = []
    for engine in {e.name: e for e in all_engines}.values():
        if current is not None and engine.name == current.name:
            known = known_container_ids(engine)
            if known is None:
                found.append(f"engine {engine.name}: does not answer `docker ps -a`; its shims were not checked")
                continue
            procs = orphan_shims(engine.exec_root, known)
        else:
            procs = engine_processes(engine.exec_root)
        if procs:
            found += [f"engine {engine.name}: {p}" for p in procs]
            found += reap(procs)
    return found


class Matrix:
    def __init__(self, engines: list[Engine], args: list[str]) -> None:
        self.args = args
        self.explicit = names_paths(args)
        self.engines = engines[:1] if self.explicit else engines
        self.switching = any(not e.system for e in self.engines)
        self.integration = runs_integration(args, self.explicit)
        self.timeout = os.environ.get("PYNETDRV_TEST_RUN_TIMEOUT", "1500")
        self.workers = os.environ.get("PYNETDRV_TEST_WORKERS", "4")
        self.system = SystemDockerd()
        self.lock: IO[str] | None = None
        self.summary: list[str] = []

    def fetched(self) -> list[Engine]:
        """Engines other than the machine's, whose processes this run may have to end."""
        return [e for e in ENGINES.values() if not e.system and e.packages is not None and e.packages.cached()]

    def setup(self) -> None:
        for engine in self.engines:
            engine.fetch(say)
        os.environ["PYNETDRV_IT_COMPOSE"] = str(fetch_unpacked(COMPOSE, say) / "bin" / "docker-compose")
        if not (self.switching or self.integration):
            return  # e.g. tests/unit only: no engine is switched or checked, no lock needed
        # Only under the lock: another run may be using another engine until then.
        self.lock = take_lock()
        for engine in [e for e in self.fetched() if engine_processes(e.exec_root)]:  # an aborted run's
            say(f"engine {engine.name}: processes of an earlier run still run")
            stop(engine, say)
        if self.switching:
            self.system = SystemDockerd.record()

    def teardown(self) -> None:
        if not self.switching:
            return
        for engine in self.fetched():
            stop(engine, say)
        self.system.restore(say)

    def switch_to(self, engine: Engine) -> None:
        if self.lock is not None:  # without it (e.g. tests/unit only) no engine is stopped
            for other in self.fetched():
                if other.name != engine.name:
                    stop(other, say)
            if not engine.system:
                self.system.stop(say)
        start(engine, say)

    def run_engine(self, index: int, engine: Engine) -> int:
        started = time.monotonic()
        self.switch_to(engine)
        ensure_busybox_image(engine.client, say)
        version = server_version(engine.client)
        if engine.system and not version.startswith("20.10."):
            say(f"engine 20.10: note: the dockerd running here is Docker {version}")
        os.environ.update(PYNETDRV_IT_DOCKER=str(engine.client), PYNETDRV_IT_EXEC_ROOT=str(engine.exec_root),
                          PYNETDRV_IT_ENGINE=engine.name, PYNETDRV_IT_ENGINE_INDEX=str(index),
                          PYNETDRV_IT_LAST_ENGINE=self.engines[-1].name)
        rc = 0
        for run_args in plan_runs(index, self.args, self.explicit, self.workers):
            say(f"pytest on Docker {version} (engine {engine.name}, client {engine.client}): {shlex.join(run_args)}")
            # A bound on each run, so CI cannot hang (every wait in the tests is bounded as well).
            run_rc = subprocess.run(["timeout", "--foreground", "-k", "30", self.timeout, sys.executable, "-m",
                                     "pytest", "-p", "no:cacheprovider", *run_args], cwd=REPO, check=False).returncode
            if run_rc == 5 and index > 0:  # e.g. -k matched no integration test
                run_rc = 0
            rc = rc or run_rc
            if run_rc not in (0, 1):
                break
        # Nothing of the suite's engines may be left behind by the tests (killed engines' shims).
        left = leftovers(engine, [*self.engines, *self.fetched()]) if self.lock is not None else []
        if rc == 0:
            result = "passed"
        elif rc in (124, 137):
            result = f"FAILED (killed after {self.timeout} s, PYNETDRV_TEST_RUN_TIMEOUT)"
        else:
            result = f"FAILED (pytest exit {rc})"
        if left:
            say(f"engine {engine.name}: processes left behind (ended now):\n    " + "\n    ".join(left))
            result += "; FAILED: processes of the suite's engines were left behind"
            rc = rc or 1
        self.summary.append(f"Docker {version} (engine {engine.name}): {result} in {time.monotonic() - started:.0f} s")
        return rc

    def run(self) -> int:
        overall = 0
        try:
            self.setup()
            for index, engine in enumerate(self.engines):
                rc = self.run_engine(index, engine)
                overall = overall or rc
                if rc not in (0, 1):  # interrupted, internal or usage error: stop
                    break
        finally:
            self.teardown()
            if self.switching:
                for engine in self.fetched():
                    check_nothing_left(engine)
        for line in self.summary:
            say(f"summary: {line}")
        return overall


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("integration.matrix: error: must run as root (network namespaces, iptables, dockerd)", file=sys.stderr)
        return 1
    os.environ["PYTHONUNBUFFERED"] = "1"
    signal.signal(signal.SIGTERM, _terminate)
    try:
        engines = parse_engines(os.environ.get("PYNETDRV_ENGINES", DEFAULT_ENGINES))
        return Matrix(engines, argv).run()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"scripts/test: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
