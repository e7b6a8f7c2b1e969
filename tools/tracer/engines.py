"""python -m tools.tracer.engines [ENGINE...]: record both scenarios on each engine with the
integration suite's engine module (integration/engines.py): the machine's dockerd is
recorded, stopped while another engine runs alone on the default socket, and started again
as it was. Holds the integration lock throughout. tools/tracer/record-engines.sh runs this
when integration/engines.py exists."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from integration import engines as eng
from integration.busybox_image import ensure_busybox_image
from tools.tracer.script import SCENARIOS

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "tests" / "fixtures" / "traces"
LOCK = Path("/run/lock/pynetdrv-integration.lock")


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def take_lock() -> None:
    if os.environ.get("PYNETDRV_IT_LOCK_HELD"):
        return
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "a")  # noqa: SIM115 - held until the process exits
    deadline = time.monotonic() + 30 * 60
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SystemExit(f"tracer: another integration run held {LOCK} for 30 min") from None
            time.sleep(2)
    os.environ["PYNETDRV_IT_LOCK_HELD"] = str(os.getpid())


def record(engine: eng.Engine) -> None:
    ensure_busybox_image(engine.client, say)
    for scenario in SCENARIOS:
        say(f"tracer: Docker {eng.server_version(engine.client)} (engine {engine.name}), scenario {scenario}")
        subprocess.run([sys.executable, "-m", "tools.tracer", "record", "--docker", str(engine.client),
                        "--scenario", scenario, "--out", str(TRACES / f"docker-{engine.name}-{scenario}.jsonl")],
                       cwd=REPO, check=True)


def main(names: list[str]) -> int:
    engines = eng.parse_engines(" ".join(names) or eng.DEFAULT_ENGINES)
    take_lock()
    system = eng.SystemDockerd.record()
    running = None
    try:
        for engine in engines:
            if engine.system:
                eng.ensure_system_dockerd(say)
            else:
                system.stop(say)
                engine.fetch(say)
                running = engine
                eng.start(engine, say)
            record(engine)
            if running is not None:
                eng.stop(running, say)
                running = None
    finally:
        if running is not None:
            eng.stop(running, say)
        system.restore(say)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
