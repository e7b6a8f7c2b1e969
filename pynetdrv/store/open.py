"""``open_store(config)`` and ``open_snapshot(path)``: the one place a store
is built from the daemon's settings (the kind of store, ``--store``, is
chosen once), and the one read-only view of it for ``status`` and ``check``."""

from __future__ import annotations

from pathlib import Path

from pynetdrv.config import Config
from pynetdrv.store.base import Store
from pynetdrv.store.snapshot import StateSnapshot


async def open_store(config: Config) -> Store:
    """The store ``config.store_url`` names, opened.  Raises StateFileError
    (or an Internal naming the file) if it cannot be used."""
    from pynetdrv.store.sqlite import SQLiteStore

    store = SQLiteStore(config.state)
    await store.open()
    return store


def open_snapshot(config_or_path: Config | Path) -> StateSnapshot:
    """One consistent, read-only read of the stored state; takes no lock and
    never waits for (or blocks) a running daemon.  Raises FileNotFoundError if
    there is no state, StateFileError naming the file if it cannot be read."""
    from pynetdrv.store.sqlite_snapshot import read_snapshot

    path = config_or_path.state if isinstance(config_or_path, Config) else config_or_path
    return read_snapshot(Path(path))
