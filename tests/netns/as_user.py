"""Running test code as another user without exec'ing anything: fork, drop every id (groups,
real/effective/saved gid and uid) in the child, then call a function there. The modules the
function needs are imported by the parent first, so the child does not have to read the
checkout or the interpreter (a clone under a mode-0700 /root, a Python under /root/.pyenv:
user nobody could not start `python -m pynetdrv` from there, but it can run its code)."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

NOBODY = 65534


@dataclass
class Exited:
    returncode: int
    stdout: str
    stderr: str


def _child(uid: int, gid: int, out: int, err: int, fn: Callable[[], int]) -> None:
    code = 70
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - pytest's capture replaced the streams
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
            raise RuntimeError("the ids were not dropped")
        try:
            code = fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def run_as(uid: int, gid: int, fn: Callable[[], int], timeout: float = 60) -> Exited:
    """fn() in a forked child running as uid/gid with no supplementary groups; its exit code
    (a SystemExit's code too) and what it wrote to stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a process with threads; the child only runs fn.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            _child(uid, gid, out.fileno(), err.fileno(), fn)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the child running as uid {uid} did not exit within {timeout} s")
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return Exited(os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode())
