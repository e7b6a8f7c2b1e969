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
    if not config.etcd:
        return store
    try:
        return cluster_store(config, store)
    except BaseException:
        await store.close()
        raise


def cluster_store(config: Config, local: Store) -> Store:
    """Cluster mode: shared records in etcd (``config.etcd``), this host's in ``local``.  etcd need
    not be up yet: every call that needs it fails, bounded, naming etcd, until it is."""
    from pynetdrv.cluster.etcd import EtcdClient
    from pynetdrv.store.cluster import ClusterPools, ClusterStore
    from pynetdrv.store.etcd_shared import EtcdSharedStore
    from pynetdrv.store.sqlite import SQLiteStore

    assert config.etcd and config.advertise_address and isinstance(local, SQLiteStore)
    client = EtcdClient.from_url(config.etcd, cacert=_opt(config.etcd_cacert), cert=_opt(config.etcd_cert),
                                 key=_opt(config.etcd_key))
    return ClusterStore(local, ClusterPools(EtcdSharedStore(client), config.advertise_address))


def _opt(path: Path | None) -> str | None:
    return None if path is None else str(path)


def open_snapshot(config_or_path: Config | Path) -> StateSnapshot:
    """One consistent, read-only read of the stored state; takes no lock and
    never waits for (or blocks) a running daemon.  Raises FileNotFoundError if
    there is no state, StateFileError naming the file if it cannot be read."""
    from pynetdrv.store.sqlite_snapshot import read_snapshot

    path = config_or_path.state if isinstance(config_or_path, Config) else config_or_path
    return read_snapshot(Path(path))
