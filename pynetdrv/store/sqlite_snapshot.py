"""Read an SQLite state file without taking any lock: ``mode=ro`` and one
read transaction, so the snapshot is consistent and a running daemon is never
blocked (SQLite WAL lets readers in beside the writer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pynetdrv.errors import StateFileError
from pynetdrv.store import sqlite_pools
from pynetdrv.store.snapshot import StateSnapshot
from pynetdrv.store.sqlite import describe_error, endpoint_from_row, network_from_row


def read_snapshot(path: Path) -> StateSnapshot:
    """Raises FileNotFoundError if there is no state file, StateFileError
    naming it if it cannot be read (not a pynetdrv database, damaged)."""
    if not path.is_file():
        raise FileNotFoundError(f"no state file at {path}")
    try:
        return _read(path)
    except sqlite3.Error as e:
        raise StateFileError(describe_error(str(path), e).replace("; the stored state was not changed", "")) from e


def _read(path: Path) -> StateSnapshot:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("BEGIN")  # deferred: a read snapshot, no write lock
        try:
            networks = tuple(network_from_row(r) for r in conn.execute(
                "SELECT data, version FROM networks ORDER BY created"))
            endpoints = tuple(endpoint_from_row(r) for r in conn.execute("SELECT data FROM endpoints ORDER BY created"))
            pools = tuple(sqlite_pools.pool_from_row(r) for r in conn.execute("SELECT * FROM pools ORDER BY created"))
            allocations = {p.pool_id: tuple(sqlite_pools.allocations(conn, p.pool_id)) for p in pools}
            free = {p.pool_id: tuple(sqlite_pools.free_ranges(conn, p.pool_id)) for p in pools}
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()
    return StateSnapshot(networks, endpoints, pools, allocations, free)
