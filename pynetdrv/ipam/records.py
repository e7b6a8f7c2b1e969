"""What IPAM keeps: pools and allocations, and the outcome of a reservation.

These records belong to the IPAM (the store only keeps them), so ``ipam``
imports nothing from ``store``: the store depends on ipam, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: gateway: the network's gateway; static: asked for by address (--ip, --aux-address);
#: dynamic: chosen by the allocator.
AllocationKind = Literal["gateway", "static", "dynamic"]


@dataclass(frozen=True)
class PoolRecord:
    pool_id: str
    address_space: str
    #: The pool, CIDR ("10.1.0.0/16").
    cidr: str
    #: --ip-range: automatic addresses come only from here; None = whole pool.
    subpool: str | None = None
    #: True if pynetdrv chose the pool (no --subnet).
    automatic: bool = False
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Allocation:
    address: str
    kind: AllocationKind
    owner: str = ""


@dataclass(frozen=True)
class PoolState:
    """A pool as the allocator reads it: the record, the round-robin cursor
    (the address the next automatic search starts at) and the pool's version
    (1 when the pool is created).  The version increments with every change
    that can alter the next automatic choice: a cursor move and a release (a
    static reservation cannot: it only takes an address the search would
    find taken).  So an automatic reservation that commits with the version
    it read is exactly the round-robin choice of the pool as it is then."""

    pool: PoolRecord
    cursor: int
    version: int


@dataclass(frozen=True)
class CursorUpdate:
    """Compare-and-swap of a pool's cursor: applied only if the pool's version
    is still ``expected_version``; the version then becomes one more."""

    expected_version: int
    new_cursor: int


#: reserved: the address is now held; taken: it was not free; moved: the
#: pool's version was no longer the expected one (another allocator moved the
#: cursor); no_pool: the pool does not exist (any more).  Only ``reserved``
#: changed anything.
Outcome = Literal["reserved", "taken", "moved", "no_pool"]


@dataclass(frozen=True)
class Reservation:
    outcome: Outcome
    #: For ``taken``: the kind of allocation holding the address, if the store knows.
    held_by: AllocationKind | None = None


RESERVED = Reservation("reserved")
MOVED = Reservation("moved")
NO_POOL = Reservation("no_pool")
