"""The store as IPAM needs it: pools, and the narrow allocation primitive the
allocator (``ipam.allocator``) is written over.

Every method is one atomic store operation.  The primitive is small enough
that each store answers it natively: SQLite with one probe of its free-range
index and one transaction, etcd with a range read and one transaction
comparing revisions.  The allocation rules (round robin, gateway, static,
ip-range, exhaustion, their errors) live only in the allocator.
"""

from __future__ import annotations

from typing import Protocol

from pynetdrv.ipam.records import Allocation, AllocationKind, CursorUpdate, PoolRecord, PoolState, Reservation


class AddressBook(Protocol):
    """Addresses are plain integers; ``family`` is 4 or 6."""

    async def pool_state(self, pool_id: str) -> PoolState | None: ...

    async def first_free(self, pool_id: str, lo: int, hi: int) -> int | None:
        """The smallest free address in [lo, hi], None if there is none (or no
        such pool).  Never enumerates addresses: a /64 costs what a /30 does."""

    async def reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str = "", cursor: CursorUpdate | None = None
    ) -> Reservation:
        """Atomically: take ``addr`` if it is free and, when ``cursor`` is
        given, compare-and-swap the pool's cursor.  Changes nothing unless the
        outcome is ``reserved``.  ``addr`` must be assignable in the pool (the
        allocator checks that first)."""

    async def release(self, pool_id: str, addr: int, family: int) -> bool:
        """Free ``addr`` and increment the pool's version (the next automatic
        choice may now differ); False (nothing done) if the pool is unknown, of
        the other family, or the address was not held."""

    async def allocations(self, pool_id: str) -> list[Allocation]:
        """The pool's held addresses, in address order ([] for an unknown pool)."""


class PoolStore(AddressBook, Protocol):
    """What ``IpamService`` takes."""

    async def add_pool(self, pool: PoolRecord) -> None:
        """Raises errors.Conflict naming the existing pool it overlaps."""

    async def get_pool(self, pool_id: str) -> PoolRecord | None: ...

    async def list_pools(self) -> list[PoolRecord]: ...

    async def delete_pool(self, pool_id: str) -> bool:
        """Deletes the pool and all its allocations."""
