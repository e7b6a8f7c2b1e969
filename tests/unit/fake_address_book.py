"""An in-memory PoolStore (``ipam.pool_store``) for unit tests of the pure
allocator: the primitive's contract and nothing more, plus a log of every
change in commit order so tests can replay it against a model.

``schedule``: how many times each call yields to the event loop before it
acts (cycled), so concurrent allocators interleave at every await, as they
would over a networked store (etcd)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field

import netaddr

from pynetdrv.errors import Conflict
from pynetdrv.ipam.addresses import overlaps, parse_cidr
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


@dataclass
class _Pool:
    record: PoolRecord
    family: int
    cursor: int
    version: int = 1
    held: dict[int, tuple[AllocationKind, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    what: str  # "reserve" or "release"
    pool_id: str
    addr: int
    kind: AllocationKind | None = None
    cursor: CursorUpdate | None = None


class FakePoolStore:
    def __init__(self, schedule: list[int] | None = None) -> None:
        self._pools: dict[str, _Pool] = {}
        self._yields = itertools.cycle(schedule or [0])
        self.log: list[Event] = []
        #: How often ``reserve`` answered each outcome.
        self.outcomes: Counter[str] = Counter()

    async def _turn(self) -> None:
        for _ in range(next(self._yields)):
            await asyncio.sleep(0)

    async def add_pool(self, pool: PoolRecord) -> None:
        await self._turn()
        net = parse_cidr(pool.cidr, "pool")
        for other in self._pools.values():
            if overlaps(net, netaddr.IPNetwork(other.record.cidr)):
                raise Conflict(f"pool {pool.cidr} overlaps pool {other.record.cidr} already in use by pynetdrv")
        self._pools[pool.pool_id] = _Pool(pool, net.version, range_bounds(pool)[0])

    async def get_pool(self, pool_id: str) -> PoolRecord | None:
        await self._turn()
        p = self._pools.get(pool_id)
        return p.record if p else None

    async def list_pools(self) -> list[PoolRecord]:
        await self._turn()
        return [p.record for p in self._pools.values()]

    async def delete_pool(self, pool_id: str) -> bool:
        await self._turn()
        return self._pools.pop(pool_id, None) is not None

    async def pool_state(self, pool_id: str) -> PoolState | None:
        await self._turn()
        p = self._pools.get(pool_id)
        return PoolState(p.record, p.cursor, p.version) if p else None

    async def first_free(self, pool_id: str, lo: int, hi: int) -> int | None:
        await self._turn()
        p = self._pools.get(pool_id)
        if p is None:
            return None
        addr = lo
        while addr in p.held:  # held addresses are few: never enumerates a /64
            addr += 1
        return addr if addr <= hi else None

    async def reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str = "", cursor: CursorUpdate | None = None
    ) -> Reservation:
        result = await self._reserve(pool_id, addr, kind, owner, cursor)
        self.outcomes[result.outcome] += 1
        return result

    async def _reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str, cursor: CursorUpdate | None
    ) -> Reservation:
        await self._turn()
        p = self._pools.get(pool_id)
        if p is None:
            return NO_POOL
        if cursor is not None and cursor.expected_version != p.version:
            return MOVED
        if addr in p.held:
            return Reservation("taken", p.held[addr][0])
        if cursor is not None:
            p.cursor, p.version = cursor.new_cursor, p.version + 1
        p.held[addr] = (kind, owner)
        self.log.append(Event("reserve", pool_id, addr, kind, cursor))
        return RESERVED

    async def release(self, pool_id: str, addr: int, family: int) -> bool:
        await self._turn()
        p = self._pools.get(pool_id)
        if p is None or p.family != family or p.held.pop(addr, None) is None:
            return False
        p.version += 1
        self.log.append(Event("release", pool_id, addr))
        return True

    async def allocations(self, pool_id: str) -> list[Allocation]:
        await self._turn()
        p = self._pools.get(pool_id)
        if p is None:
            return []
        return [Allocation(str(netaddr.IPAddress(a, p.family)), k, o) for a, (k, o) in sorted(p.held.items())]
