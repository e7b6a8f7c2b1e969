"""The directory holding the state (and the daemon's lock beside it): created
private to root, refused when every user may write to it."""

from __future__ import annotations

import stat
from pathlib import Path

from pynetdrv.errors import StateFileError


def check_state_dir(state: Path) -> None:
    """Create the state directory (0700) if missing; refuse one every user may
    write to: anyone could then swap the state file, or plant a symlink where
    the root daemon creates its files."""
    directory = state.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = directory.stat().st_mode
    if mode & stat.S_IWOTH:
        raise StateFileError(
            f"state directory {directory} is writable by every user (mode {stat.filemode(mode)}); "
            "keep the state in a directory only root can write, such as /var/lib/pynetdrv"
        )
