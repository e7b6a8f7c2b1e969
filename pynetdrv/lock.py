"""One daemon per state file: an flock next to it, held for the process life.

flock is released by the kernel when the process dies (even on SIGKILL), so
there is never a stale lock to clean up by hand.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pynetdrv.store.state_dir import check_state_dir


class AlreadyRunning(Exception):
    pass


class StateLock:
    def __init__(self, state: Path) -> None:
        self.path = state.with_name(state.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises AlreadyRunning, or StateFileError for an unsafe directory."""
        check_state_dir(self.path)
        # O_NOFOLLOW: root must never truncate a file a symlink points at.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another pynetdrv (pid {holder}) is already running with state {self.path.with_suffix('')}; "
                "stop it first, or give this one its own --state"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:  # a full state disk: say which file
            os.close(fd)
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
