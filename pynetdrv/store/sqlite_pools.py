"""Pools and the allocation primitive (``ipam.pool_store.AddressBook``) on an
SQLite connection.  The allocation rules are not here: they are the pure
allocator in ``ipam.allocator``.

free_ranges holds each pool's free addresses as disjoint [start, end]
intervals: the smallest free address in a range, or whether one address is
free, is one index probe however full or large the pool is (a filled /16 or a
/64).  Each writing function runs inside the caller's ``BEGIN IMMEDIATE``
transaction, so a reservation (free-range split + allocation row + cursor
compare-and-swap) is atomic, and ``PRIMARY KEY (pool_id, addr)`` makes a
double allocation impossible even if the logic above had a bug.
"""

from __future__ import annotations

import json
import sqlite3
import time

import netaddr

from pynetdrv.errors import Conflict
from pynetdrv.ipam.addresses import from_key, parse_cidr, to_key, usable_bounds
from pynetdrv.ipam.allocator import range_bounds
from pynetdrv.ipam.records import (
    MOVED,
    NO_POOL,
    RESERVED,
    Allocation,
    AllocationKind,
    CursorUpdate,
    PoolRecord,
    PoolState,
    Reservation,
)

Range = tuple[int, int]


def add_pool(conn: sqlite3.Connection, pool: PoolRecord) -> None:
    net = parse_cidr(pool.cidr, "pool")
    v = net.version
    other = conn.execute(
        "SELECT cidr FROM pools WHERE family = ? AND first <= ? AND last >= ? LIMIT 1",
        (v, to_key(int(net.last), v), to_key(int(net.first), v)),
    ).fetchone()
    if other is not None:
        raise Conflict(f"pool {pool.cidr} overlaps pool {other[0]} already in use by pynetdrv")
    cursor = range_bounds(pool)[0]
    conn.execute(
        "INSERT INTO pools (pool_id, address_space, cidr, subpool, family, first, last, cursor, automatic, options,"
        " created, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        (pool.pool_id, pool.address_space, pool.cidr, pool.subpool, v,
         to_key(int(net.first), v), to_key(int(net.last), v), to_key(cursor, v),
         int(pool.automatic), json.dumps(pool.options), time.time()),
    )
    first, last = usable_bounds(net)
    if first <= last:
        _insert_range(conn, pool.pool_id, (first, last), v)


def pool_from_row(row: sqlite3.Row) -> PoolRecord:
    return PoolRecord(
        pool_id=row["pool_id"], address_space=row["address_space"], cidr=row["cidr"],
        subpool=row["subpool"], automatic=bool(row["automatic"]), options=json.loads(row["options"]),
    )


def state_from_row(row: sqlite3.Row) -> PoolState:
    return PoolState(pool_from_row(row), from_key(row["cursor"]), row["version"])


def first_free(conn: sqlite3.Connection, pool_id: str, lo: int, hi: int) -> int | None:
    """One statement, one probe of free_ranges_by_end: the first free range
    ending at or after ``lo``; its first address at or after ``lo``, if <=
    ``hi``.  The pool's family picks the key width (a ``lo`` beyond IPv4 gives
    a 5-byte key above every 4-byte one: nothing found)."""
    if lo > hi:
        return None
    found = conn.execute(
        'SELECT f.start FROM pools p JOIN free_ranges f ON f.pool_id = p.pool_id '
        'AND f."end" >= (CASE p.family WHEN 4 THEN ? ELSE ? END) WHERE p.pool_id = ? ORDER BY f."end" LIMIT 1',
        (*_keys(lo), pool_id),
    ).fetchone()
    if found is None:
        return None
    addr = max(from_key(found[0]), lo)
    return addr if addr <= hi else None


def _keys(addr: int) -> tuple[bytes, bytes]:
    """``addr`` as a key of either family, for statements where the pool's
    family picks one (beyond IPv4, a 5-byte key above every 4-byte one)."""
    return (to_key(addr, 4) if addr < 1 << 32 else b"\xff" * 5), to_key(addr, 6)


def reserve(
    conn: sqlite3.Connection, pool_id: str, addr: int, kind: AllocationKind, owner: str, cursor: CursorUpdate | None
) -> Reservation:
    # One statement: the pool's family and version, and the free range that
    # would hold ``addr`` (the last one starting at or before it).
    row = conn.execute(
        'SELECT p.family, p.version, f.start, f."end" FROM pools p LEFT JOIN free_ranges f '
        "ON f.pool_id = p.pool_id AND f.start <= (CASE p.family WHEN 4 THEN ? ELSE ? END) "
        "WHERE p.pool_id = ? ORDER BY f.start DESC LIMIT 1",
        (*_keys(addr), pool_id),
    ).fetchone()
    if row is None:
        return NO_POOL
    v, version, start, end = row
    if cursor is not None and version != cursor.expected_version:
        return MOVED
    if start is None or from_key(end) < addr:
        held = conn.execute(
            "SELECT kind FROM allocations WHERE pool_id = ? AND addr = ?", (pool_id, to_key(addr, v))
        ).fetchone()
        return Reservation("taken", held[0] if held else None)
    if cursor is not None:
        conn.execute(
            "UPDATE pools SET cursor = ?, version = version + 1 WHERE pool_id = ?",
            (to_key(cursor.new_cursor, v), pool_id),
        )
    _take(conn, pool_id, (from_key(start), from_key(end)), addr, v)
    conn.execute(
        "INSERT INTO allocations VALUES (?, ?, ?, ?, ?)",
        (pool_id, to_key(addr, v), kind, owner, time.time()),
    )
    return RESERVED


def _take(conn: sqlite3.Connection, pool_id: str, free: Range, addr: int, v: int) -> None:
    """Split the free range around ``addr``: one statement unless ``addr`` is
    inside it (taking the first address, the usual case, moves its start)."""
    first, last = free
    key = to_key(first, v)
    if first == last:
        conn.execute("DELETE FROM free_ranges WHERE pool_id = ? AND start = ?", (pool_id, key))
    elif addr == first:
        conn.execute("UPDATE free_ranges SET start = ? WHERE pool_id = ? AND start = ?",
                     (to_key(addr + 1, v), pool_id, key))
    else:
        conn.execute('UPDATE free_ranges SET "end" = ? WHERE pool_id = ? AND start = ?',
                     (to_key(addr - 1, v), pool_id, key))
        if addr < last:
            _insert_range(conn, pool_id, (addr + 1, last), v)


def release(conn: sqlite3.Connection, pool_id: str, addr: int, family: int) -> bool:
    """Free the address and merge it with its free neighbours.  Unknown pool,
    other family or address not held: nothing to do."""
    row = conn.execute("SELECT family FROM pools WHERE pool_id = ?", (pool_id,)).fetchone()
    if row is None or row[0] != family:
        return False
    v = family
    gone = conn.execute("DELETE FROM allocations WHERE pool_id = ? AND addr = ?", (pool_id, to_key(addr, v)))
    if gone.rowcount == 0:
        return False
    conn.execute("UPDATE pools SET version = version + 1 WHERE pool_id = ?", (pool_id,))
    start, end = addr, addr
    if addr > 0:
        left = conn.execute(
            'DELETE FROM free_ranges WHERE pool_id = ? AND "end" = ? RETURNING start',
            (pool_id, to_key(addr - 1, v)),
        ).fetchone()
        start = from_key(left[0]) if left else addr
    if addr < (1 << (32 if v == 4 else 128)) - 1:
        right = conn.execute(
            'DELETE FROM free_ranges WHERE pool_id = ? AND start = ? RETURNING "end"',
            (pool_id, to_key(addr + 1, v)),
        ).fetchone()
        end = from_key(right[0]) if right else addr
    _insert_range(conn, pool_id, (start, end), v)
    return True


def allocations(conn: sqlite3.Connection, pool_id: str) -> list[Allocation]:
    row = conn.execute("SELECT family FROM pools WHERE pool_id = ?", (pool_id,)).fetchone()
    if row is None:
        return []
    v = row[0]
    return [
        Allocation(str(netaddr.IPAddress(from_key(a), v)), k, o)
        for a, k, o in conn.execute(
            "SELECT addr, kind, owner FROM allocations WHERE pool_id = ? ORDER BY addr", (pool_id,)
        )
    ]


def free_ranges(conn: sqlite3.Connection, pool_id: str) -> list[Range]:
    """The pool's free intervals in address order (for snapshots and tests)."""
    return [
        (from_key(a), from_key(b))
        for a, b in conn.execute('SELECT start, "end" FROM free_ranges WHERE pool_id = ? ORDER BY start', (pool_id,))
    ]


def _insert_range(conn: sqlite3.Connection, pool_id: str, free: Range, v: int) -> None:
    conn.execute("INSERT INTO free_ranges VALUES (?, ?, ?)", (pool_id, to_key(free[0], v), to_key(free[1], v)))
