"""Address allocation: every rule, written once, over the store's narrow
primitive (``ipam.pool_store.AddressBook``), so SQLite and etcd allocate alike.

- Automatic (round robin): the first free address at or after the pool's
  cursor, wrapping once to the start of the range, so a released address is
  reused only after the rest of the range was used once.  The cursor moves
  past the address in the same atomic store operation that takes it, and only
  if no other allocator moved it since it was read (compare-and-swap on the
  pool's version); a lost race is retried with fresh numbers, after a short
  random pause from the second loss on: allocators on several hosts that lose
  and retry in step would otherwise keep colliding (one starved 64 times in a
  row in the two-host etcd test on a loaded machine).
- Gateway: the first usable address (.1), as users expect; else the next free one.
- Static (``--ip``, ``--aux-address``): exactly that address, if it is in the
  pool, assignable and free.
- ip-range (sub-pool): automatic addresses come only from it.
- Exhaustion: Unavailable naming the pool (and range).

The store's own uniqueness (SQLite's primary key, etcd's create-only
transaction) is the last line of defence: correctness never depends on the
per-pool lock below, which only spares one process's concurrent requests
from racing each other.
"""

from __future__ import annotations

import asyncio
import random
import weakref

import netaddr

from pynetdrv.errors import Conflict, InvalidParameter, NotFound, Unavailable
from pynetdrv.ipam.addresses import geometry, parse_ip, usable_bounds
from pynetdrv.ipam.pool_store import AddressBook
from pynetdrv.ipam.records import AllocationKind, CursorUpdate, PoolRecord, PoolState

#: Attempts of one automatic reservation before giving up; each lost attempt
#: means another allocator (another process) took an address meanwhile.
MAX_ATTEMPTS = 64
#: The longest random pause before a retry (seconds); the n-th loss waits up to
#: 1 ms * 2**(n-1), capped here.
MAX_BACKOFF_S = 0.02


def range_bounds(pool: PoolRecord) -> tuple[int, int]:
    """The addresses automatic allocation may use: the sub-pool (--ip-range)
    if there is one, never the pool's network/broadcast address."""
    g = geometry(pool.cidr, pool.subpool)
    return g.lo, g.hi


def _unknown(pool_id: str) -> NotFound:
    return NotFound(f"unknown pool {pool_id}: it was never requested or has been released")


class Allocator:
    def __init__(self, book: AddressBook) -> None:
        self._book = book
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def request(
        self, pool_id: str, address: str | None, gateway: bool, owner: str = "", kind: AllocationKind | None = None
    ) -> str:
        """RequestAddress: ``address`` or, when None, the gateway / next
        automatic address.  Returns it with the pool's prefix ("10.1.0.5/16").
        ``kind`` overrides what an exact ``address`` is recorded as (default
        static, or gateway)."""
        state = await self._state(pool_id)
        if address:
            # Docker sends Options null for both --aux-address and --ip, so
            # the two cannot be told apart here.
            ip = await self._exact(state, address, kind or ("gateway" if gateway else "static"), owner)
        elif gateway:
            ip = await self._gateway(state, owner)
        else:
            ip = await self._next(state, "dynamic", owner)
        return f"{ip}/{geometry(state.pool.cidr, state.pool.subpool).prefixlen}"

    async def reserve(self, pool_id: str, address: str | None, kind: AllocationKind, owner: str = "") -> str:
        """``address`` exactly, or when None the next automatic one (round
        robin); the plain IP.  Raises NotFound (pool), Conflict (in use),
        InvalidParameter (outside the pool or not assignable), Unavailable
        (exhausted)."""
        state = await self._state(pool_id)
        if address is not None:
            return await self._exact(state, address, kind, owner)
        return await self._next(state, kind, owner)

    async def release(self, pool_id: str, address: str) -> bool:
        """Idempotent: an unknown pool or an address not held is nothing to do
        (Docker releases stale addresses after a crash)."""
        try:
            ip = parse_ip(address, "address")
        except InvalidParameter:
            if await self._book.pool_state(pool_id) is None:
                return False
            raise
        return await self._book.release(pool_id, int(ip), ip.version)

    async def _state(self, pool_id: str) -> PoolState:
        state = await self._book.pool_state(pool_id)
        if state is None:
            raise _unknown(pool_id)
        return state

    async def _exact(self, state: PoolState, address: str, kind: AllocationKind, owner: str) -> str:
        pool = state.pool
        net = netaddr.IPNetwork(pool.cidr)
        ip = parse_ip(address, "address")
        if ip.version != net.version or ip not in net:
            raise InvalidParameter(f"address {ip} is outside pool {pool.cidr}")
        first, last = usable_bounds(net)
        if not first <= int(ip) <= last:
            raise InvalidParameter(f"address {ip} is the network or broadcast address of pool {pool.cidr}")
        result = await self._book.reserve(pool.pool_id, int(ip), kind, owner)
        if result.outcome == "no_pool":
            raise _unknown(pool.pool_id)
        if result.outcome != "reserved":
            by = f" (by a {result.held_by} address)" if result.held_by else ""
            raise Conflict(f"address {ip} is already in use in pool {pool.cidr}{by}")
        return str(ip)

    async def _gateway(self, state: PoolState, owner: str) -> str:
        """The first usable address (.1), as users expect; if that is taken,
        the next free one."""
        net = netaddr.IPNetwork(state.pool.cidr)
        first, _ = usable_bounds(net)
        try:
            return await self._exact(state, str(netaddr.IPAddress(first, net.version)), "gateway", owner)
        except Conflict:
            return await self._next(state, "gateway", owner)

    async def _next(self, state: PoolState, kind: AllocationKind, owner: str) -> str:
        lock = self._locks.get(state.pool.pool_id)
        if lock is None:
            lock = self._locks[state.pool.pool_id] = asyncio.Lock()
        # Waiting for the lock means the state read before is stale: read it
        # again rather than lose an attempt (a stale version only costs that).
        stale = lock.locked()
        async with lock:
            for attempt in range(MAX_ATTEMPTS):
                if attempt or stale:
                    state = await self._state(state.pool.pool_id)
                addr = await self._search(state)
                g = geometry(state.pool.cidr, state.pool.subpool)
                nxt = addr + 1 if addr < g.hi else g.lo
                result = await self._book.reserve(
                    state.pool.pool_id, addr, kind, owner, CursorUpdate(state.version, nxt)
                )
                if result.outcome == "reserved":
                    return str(netaddr.IPAddress(addr, g.version))
                if result.outcome == "no_pool":
                    raise _unknown(state.pool.pool_id)
                # taken or moved: another allocator got there first; read again.
                if attempt:
                    await asyncio.sleep(random.uniform(0, min(MAX_BACKOFF_S, 0.001 * 2 ** (attempt - 1))))
        raise Unavailable(
            f"could not reserve an address in pool {state.pool.cidr}: {MAX_ATTEMPTS} attempts in a row lost "
            "to concurrent allocations; try again"
        )

    async def _search(self, state: PoolState) -> int:
        """First free address at or after the cursor, wrapping once to the
        start of the range: released addresses are reused only after the rest."""
        pool = state.pool
        g = geometry(pool.cidr, pool.subpool)
        lo, hi = g.lo, g.hi
        start = min(max(state.cursor, lo), hi) if lo <= hi else lo
        found = await self._book.first_free(pool.pool_id, start, hi) if lo <= hi else None
        if found is None and start > lo:
            found = await self._book.first_free(pool.pool_id, lo, start - 1)
        if found is None:
            where = f" range {pool.subpool} of" if pool.subpool else ""
            raise Unavailable(f"no free address left in{where} pool {pool.cidr}")
        return found
