"""``open_store(config)``: the one place a Store is built from the daemon's
settings, so the kind of store (``--store``) is chosen once."""

from __future__ import annotations

from pynetdrv.config import Config
from pynetdrv.store.base import Store


async def open_store(config: Config) -> Store:
    """The store ``config.store_url`` names, opened.  Raises StateFileError
    (or an Internal naming the file) if it cannot be used."""
    from pynetdrv.store.sqlite import SQLiteStore

    store = SQLiteStore(config.state)
    await store.open()
    return store
