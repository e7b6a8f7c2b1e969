"""The benchmarks' daemon never outlives the process that started it.

A bench worker that hits its time limit is killed; the pynetdrv it started
(its own session, so no signal to the worker reaches it) must stop too,
instead of running on with its socket and state (a livelocked build of the
store once left one running for an hour).  Root: pynetdrv serve refuses to
run otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STARTER = """
import sys, time
from pathlib import Path
from bench.daemon import Daemon
d = Daemon(Path(sys.argv[1]) / "p.sock", Path(sys.argv[1]) / "state.db", Path(sys.argv[1]) / "log")
d.spawn()
d.wait_ready()
print(d.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, init, reaps it later).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_the_daemon_stops_when_its_starter_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    daemon_pid = 0
    try:
        assert starter.stdout is not None
        daemon_pid = int(starter.stdout.readline())
        assert alive(daemon_pid)
        starter.send_signal(signal.SIGKILL)
        starter.wait(10)
        deadline = time.monotonic() + 30  # it drains for up to 10 s, then exits
        while alive(daemon_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(daemon_pid), "the daemon outlived the process that started it"
        assert not (tmp_path / "p.sock").exists()  # and it stopped cleanly (SIGTERM)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        if starter.stdout is not None:
            starter.stdout.close()
        if daemon_pid and alive(daemon_pid):
            os.kill(daemon_pid, signal.SIGKILL)
