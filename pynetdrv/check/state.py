"""Read the state file without taking any lock: ``mode=ro`` and one read
transaction, so the snapshot is consistent and a running daemon is never
blocked (SQLite WAL lets readers in beside the writer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pynetdrv.check.model import StateSnapshot
from pynetdrv.store import sqlite_pools
from pynetdrv.store.sqlite import _endpoint, _network


def read_state(path: Path) -> StateSnapshot:
    """Raises FileNotFoundError if there is no state file, sqlite3.Error if it
    cannot be read (not a pynetdrv database, corrupt)."""
    if not path.is_file():
        raise FileNotFoundError(f"no state file at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("BEGIN")  # deferred: a read snapshot, no write lock
        try:
            networks = tuple(_network(r) for r in conn.execute("SELECT data FROM networks ORDER BY created"))
            endpoints = tuple(_endpoint(r) for r in conn.execute("SELECT data FROM endpoints ORDER BY created"))
            pools = tuple(sqlite_pools.pool_from_row(r) for r in conn.execute("SELECT * FROM pools ORDER BY created"))
            allocations = {p.pool_id: tuple(sqlite_pools.allocations(conn, p.pool_id)) for p in pools}
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()
    return StateSnapshot(networks, endpoints, pools, allocations)
