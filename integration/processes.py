"""Processes seen through /proc: their state, command line and children; ending one."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from integration.cmd import wait_for


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_gone(pid: int) -> bool:
    state = proc_state(pid)
    if state in (None, "Z", "X"):
        if state == "Z":
            with contextlib.suppress(ChildProcessError):  # reap it if it happens to be our child
                os.waitpid(pid, os.WNOHANG)
        return True
    return False


def cmdline_of(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if a]
    except OSError:
        return []


def children_of(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def end_process(pid: int, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: pid_gone(pid), timeout, f"process {pid} to exit on SIGTERM")
    except ProcessLookupError:
        return
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: pid_gone(pid), 10, f"process {pid} to die on SIGKILL")
