"""Pool and address-allocation operations on an SQLite connection.

Each function runs inside the caller's ``BEGIN IMMEDIATE`` transaction, so a
reservation (free-range split + allocation row + cursor move) is atomic, and
``PRIMARY KEY (pool_id, addr)`` makes a double allocation impossible even if
this logic had a bug.
"""

from __future__ import annotations

import json
import sqlite3
import time

import netaddr

from pynetdrv.errors import Conflict, InvalidParameter, NotFound, Unavailable
from pynetdrv.ipam.addresses import Geometry, from_key, geometry, parse_cidr, parse_ip, to_key, usable_bounds
from pynetdrv.store.base import Allocation, AllocationKind, PoolRecord

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
        "INSERT INTO pools VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (pool.pool_id, pool.address_space, pool.cidr, pool.subpool, v,
         to_key(int(net.first), v), to_key(int(net.last), v), to_key(cursor, v),
         int(pool.automatic), json.dumps(pool.options), time.time()),
    )
    first, last = usable_bounds(net)
    if first <= last:
        _insert_range(conn, pool.pool_id, (first, last), v)


def range_bounds(pool: PoolRecord) -> Range:
    """The addresses automatic allocation may use: the sub-pool (--ip-range)
    if there is one, never the pool's network/broadcast address."""
    g = geometry(pool.cidr, pool.subpool)
    return g.lo, g.hi


def pool_from_row(row: sqlite3.Row) -> PoolRecord:
    return PoolRecord(
        pool_id=row["pool_id"], address_space=row["address_space"], cidr=row["cidr"],
        subpool=row["subpool"], automatic=bool(row["automatic"]), options=json.loads(row["options"]),
    )


def get_pool_row(conn: sqlite3.Connection, pool_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM pools WHERE pool_id = ?", (pool_id,)).fetchone()
    return row


def reserve(conn: sqlite3.Connection, pool_id: str, address: str | None, kind: AllocationKind, owner: str) -> str:
    row = get_pool_row(conn, pool_id)
    if row is None:
        raise NotFound(f"unknown pool {pool_id}")
    v = row["family"]
    if address is None:
        g = geometry(row["cidr"], row["subpool"])
        addr, free = _next_free(conn, pool_id, g, from_key(row["cursor"]), row["cidr"], row["subpool"])
        nxt = addr + 1 if addr < g.hi else g.lo
        conn.execute("UPDATE pools SET cursor = ? WHERE pool_id = ?", (to_key(nxt, v), pool_id))
    else:
        addr, free = _exact(conn, pool_from_row(row), address)
    _take(conn, pool_id, free, addr, v)
    conn.execute(
        "INSERT INTO allocations VALUES (?, ?, ?, ?, ?)",
        (pool_id, to_key(addr, v), kind, owner, time.time()),
    )
    return str(netaddr.IPAddress(addr, v))


def _exact(conn: sqlite3.Connection, pool: PoolRecord, address: str) -> tuple[int, Range]:
    net = netaddr.IPNetwork(pool.cidr)
    ip = parse_ip(address, "address")
    if ip.version != net.version or ip not in net:
        raise InvalidParameter(f"address {ip} is outside pool {pool.cidr}")
    first, last = usable_bounds(net)
    if not first <= int(ip) <= last:
        raise InvalidParameter(f"address {ip} is the network or broadcast address of pool {pool.cidr}")
    free = _free_range_containing(conn, pool.pool_id, int(ip), net.version)
    if free is None:
        held = conn.execute(
            "SELECT kind FROM allocations WHERE pool_id = ? AND addr = ?",
            (pool.pool_id, to_key(int(ip), net.version)),
        ).fetchone()
        by = f" (by a {held[0]} address)" if held else ""
        raise Conflict(f"address {ip} is already in use in pool {pool.cidr}{by}")
    return int(ip), free


def _next_free(
    conn: sqlite3.Connection, pool_id: str, g: Geometry, cursor: int, cidr: str, subpool: str | None
) -> tuple[int, Range]:
    """First free address at or after the cursor, wrapping once to the start
    of the range: released addresses are reused only after the rest."""
    lo, hi, v = g.lo, g.hi, g.version
    start = min(max(cursor, lo), hi) if lo <= hi else lo
    for begin in (start, lo) if start > lo else (lo,):
        found = conn.execute(
            'SELECT start, "end" FROM free_ranges WHERE pool_id = ? AND "end" >= ? ORDER BY "end" LIMIT 1',
            (pool_id, to_key(begin, v)),
        ).fetchone()
        if found is not None:
            free = (from_key(found[0]), from_key(found[1]))
            addr = max(free[0], begin)
            if addr <= hi:
                return addr, free
    where = f" range {subpool} of" if subpool else ""
    raise Unavailable(f"no free address left in{where} pool {cidr}")


def _free_range_containing(conn: sqlite3.Connection, pool_id: str, addr: int, v: int) -> Range | None:
    found = conn.execute(
        'SELECT start, "end" FROM free_ranges WHERE pool_id = ? AND start <= ? ORDER BY start DESC LIMIT 1',
        (pool_id, to_key(addr, v)),
    ).fetchone()
    if found is None or from_key(found[1]) < addr:
        return None
    return from_key(found[0]), from_key(found[1])


def _take(conn: sqlite3.Connection, pool_id: str, free: Range, addr: int, v: int) -> None:
    """Split the free range around ``addr``."""
    conn.execute("DELETE FROM free_ranges WHERE pool_id = ? AND start = ?", (pool_id, to_key(free[0], v)))
    if free[0] < addr:
        _insert_range(conn, pool_id, (free[0], addr - 1), v)
    if addr < free[1]:
        _insert_range(conn, pool_id, (addr + 1, free[1]), v)


def release(conn: sqlite3.Connection, pool_id: str, address: str) -> bool:
    """Free the address and merge it with its free neighbours.  Unknown pool
    or address: nothing to do (Docker releases stale addresses after a crash)."""
    row = get_pool_row(conn, pool_id)
    if row is None:
        return False
    v = row["family"]
    ip = parse_ip(address, "address")
    if ip.version != v:
        return False
    addr = int(ip)
    gone = conn.execute("DELETE FROM allocations WHERE pool_id = ? AND addr = ?", (pool_id, to_key(addr, v)))
    if gone.rowcount == 0:
        return False
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
    row = get_pool_row(conn, pool_id)
    if row is None:
        return []
    v = row["family"]
    return [
        Allocation(str(netaddr.IPAddress(from_key(a), v)), k, o)
        for a, k, o in conn.execute(
            "SELECT addr, kind, owner FROM allocations WHERE pool_id = ? ORDER BY addr", (pool_id,)
        )
    ]


def _insert_range(conn: sqlite3.Connection, pool_id: str, free: Range, v: int) -> None:
    conn.execute("INSERT INTO free_ranges VALUES (?, ?, ?)", (pool_id, to_key(free[0], v), to_key(free[1], v)))
