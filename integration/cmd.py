"""Running commands and waiting: run() and its result Out, CommandError, wait_for().

Every wait in the integration tests is a bounded poll (wait_for); every command a bounded run.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any


class CommandError(AssertionError):
    """A command the test needed failed; the message carries its output."""


class Out(str):
    """stdout of a command (stripped), with .rc and .stderr attached."""

    rc: int
    stderr: str
    argv: list[str]

    def __new__(cls, stdout: str, rc: int, stderr: str, argv: list[str]) -> Out:
        obj = super().__new__(cls, stdout.strip())
        obj.rc = rc
        obj.stderr = stderr.strip()
        obj.argv = argv
        return obj

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def output(self) -> str:
        """stdout and stderr together (docker prints errors on stderr)."""
        return f"{self}\n{self.stderr}".strip()


def run(argv: list[str], *, check: bool = True, timeout: float = 60, input: str | None = None,
        env: dict[str, str] | None = None) -> Out:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input, check=False,
            stdin=None if input is not None else subprocess.DEVNULL, env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"timed out after {timeout}s: {' '.join(argv)}\n"
                           f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}") from None
    out = Out(proc.stdout, proc.returncode, proc.stderr, argv)
    if check and proc.returncode != 0:
        raise CommandError(f"exit {proc.returncode}: {' '.join(argv)}\n"
                           f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
    return out


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll pred() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except (CommandError, OSError, ValueError, KeyError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)
