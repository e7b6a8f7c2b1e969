"""The state as ``pynetdrv check`` reads it: the store's read-only snapshot
(no lock taken, a running daemon never blocked)."""

from __future__ import annotations

from pathlib import Path

from pynetdrv.store.open import open_snapshot
from pynetdrv.store.snapshot import StateSnapshot


def read_state(path: Path) -> StateSnapshot:
    """Raises FileNotFoundError if there is no state file, StateFileError
    naming it if it cannot be read (not a pynetdrv database, damaged)."""
    return open_snapshot(path)
