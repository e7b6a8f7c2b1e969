"""The SQLite Store: one file, WAL, every write a committed transaction.

All database work runs on one dedicated thread: the event loop never blocks
on fsync, and the single writer serialises every reservation, which together
with the schema's primary keys means concurrent RequestAddress calls can
never be given the same address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pynetdrv.errors import Conflict, Internal
from pynetdrv.store import sqlite_pools as pools
from pynetdrv.store.base import Allocation, AllocationKind, EndpointRecord, NetworkRecord, PoolRecord, PortMapping
from pynetdrv.store.sqlite_file import configure, open_state
from pynetdrv.store.sqlite_schema import migrate

T = TypeVar("T")
log = logging.getLogger(__name__)

_HINTS = {
    "SQLITE_FULL": "the file system holding it is full",
    "SQLITE_READONLY": "it or its file system is read-only",
    "SQLITE_IOERR": "the file system holding it failed a read or write (read-only or failing disk?)",
    "SQLITE_CANTOPEN": "it cannot be opened (file system read-only or missing?)",
    "SQLITE_CORRUPT": "it is damaged",
}


def describe_error(path: str, err: sqlite3.Error) -> str:
    """``state file /x/state.db: database or disk is full (SQLITE_FULL: the
    file system holding it is full); the stored state was not changed``."""
    name = getattr(err, "sqlite_errorname", "") or ""
    hint = next((h for prefix, h in _HINTS.items() if name.startswith(prefix)), "")
    detail = f" ({name}: {hint})" if hint else (f" ({name})" if name else "")
    return f"state file {path}: {err}{detail}; the stored state was not changed"


class SQLiteStore:
    """``path`` ":memory:" gives a private in-memory database (unit tests)."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pynetdrv-store")
        self._conn: sqlite3.Connection | None = None

    # Plumbing -------------------------------------------------------------
    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if self._path == ":memory:":
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            configure(conn)
            migrate(conn)
        else:
            conn = open_state(Path(self._path))
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as e:
            # Disk full, read-only or failing file system: the transaction was
            # rolled back; say which file and what the disk said.
            raise Internal(describe_error(self._path, e)) from e

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        if conn is None:
            raise RuntimeError("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) leaves the transaction open; SQLite
            # may also have rolled back already (SQLITE_FULL, SQLITE_IOERR).
            # Either way nothing of it may stay, and the original error counts.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback after a failed transaction failed")
            raise

    def _in_tx(self, fn: Callable[..., T], *args: Any) -> T:
        with self._tx() as conn:
            return fn(conn, *args)

    async def _tx_run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._in_tx, fn, *args)

    # Pools and addresses --------------------------------------------------
    async def add_pool(self, pool: PoolRecord) -> None:
        await self._tx_run(pools.add_pool, pool)

    async def get_pool(self, pool_id: str) -> PoolRecord | None:
        row = await self._tx_run(pools.get_pool_row, pool_id)
        return None if row is None else pools.pool_from_row(row)

    async def list_pools(self) -> list[PoolRecord]:
        rows = await self._tx_run(lambda c: c.execute("SELECT * FROM pools ORDER BY created").fetchall())
        return [pools.pool_from_row(r) for r in rows]

    async def delete_pool(self, pool_id: str) -> bool:
        cur = await self._tx_run(lambda c: c.execute("DELETE FROM pools WHERE pool_id = ?", (pool_id,)))
        return bool(cur.rowcount)

    async def reserve_address(
        self, pool_id: str, address: str | None, kind: AllocationKind, owner: str = ""
    ) -> str:
        return await self._tx_run(pools.reserve, pool_id, address, kind, owner)

    async def release_address(self, pool_id: str, address: str) -> bool:
        return await self._tx_run(pools.release, pool_id, address)

    async def allocations(self, pool_id: str) -> list[Allocation]:
        return await self._tx_run(pools.allocations, pool_id)

    # Networks -------------------------------------------------------------
    async def put_network(self, network: NetworkRecord) -> None:
        await self._tx_run(_put_network, network)

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        rows = await self._select("SELECT data FROM networks WHERE network_id = ?", network_id)
        return _network(rows[0]) if rows else None

    async def list_networks(self) -> list[NetworkRecord]:
        return [_network(r) for r in await self._select("SELECT data FROM networks ORDER BY created")]

    async def delete_network(self, network_id: str) -> bool:
        return await self._delete("DELETE FROM networks WHERE network_id = ?", network_id)

    # Endpoints ------------------------------------------------------------
    async def put_endpoint(self, endpoint: EndpointRecord) -> None:
        data = json.dumps(dataclasses.asdict(endpoint))
        await self._tx_run(
            lambda c: c.execute(
                "INSERT INTO endpoints VALUES (?, ?, ?, ?) ON CONFLICT (endpoint_id) DO UPDATE SET data = excluded.data",
                (endpoint.endpoint_id, endpoint.network_id, data, time.time()),
            )
        )

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        rows = await self._select("SELECT data FROM endpoints WHERE endpoint_id = ?", endpoint_id)
        return _endpoint(rows[0]) if rows else None

    async def list_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]:
        if network_id is None:
            rows = await self._select("SELECT data FROM endpoints ORDER BY created")
        else:
            rows = await self._select("SELECT data FROM endpoints WHERE network_id = ? ORDER BY created", network_id)
        return [_endpoint(r) for r in rows]

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return await self._delete("DELETE FROM endpoints WHERE endpoint_id = ?", endpoint_id)

    async def _select(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return await self._tx_run(lambda c: c.execute(sql, args).fetchall())

    async def _delete(self, sql: str, *args: Any) -> bool:
        return bool((await self._tx_run(lambda c: c.execute(sql, args))).rowcount)


def _put_network(conn: sqlite3.Connection, network: NetworkRecord) -> None:
    other = conn.execute(
        "SELECT network_id FROM networks WHERE bridge = ? AND network_id != ?",
        (network.bridge, network.network_id),
    ).fetchone()
    if other is not None:
        raise Conflict(f"bridge name {network.bridge} is already used by network {other[0][:12]}")
    data = json.dumps(dataclasses.asdict(network))
    conn.execute(
        "INSERT INTO networks VALUES (?, ?, ?, ?) ON CONFLICT (network_id) DO UPDATE "
        "SET bridge = excluded.bridge, data = excluded.data",
        (network.network_id, network.bridge, data, time.time()),
    )


def _network(row: sqlite3.Row) -> NetworkRecord:
    d = json.loads(row["data"])
    d["gateways"], d["pools"] = tuple(d["gateways"]), tuple(d["pools"])
    return NetworkRecord(**_known(NetworkRecord, d))


def _endpoint(row: sqlite3.Row) -> EndpointRecord:
    d = json.loads(row["data"])
    d["ports"] = tuple(PortMapping(**p) for p in d.get("ports", ()))
    return EndpointRecord(**_known(EndpointRecord, d))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Fields of ``cls`` only: rows written by a newer pynetdrv still load;
    fields added since a row was written take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
