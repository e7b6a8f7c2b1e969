"""``StateSnapshot``: one consistent read of everything a store holds, for
``pynetdrv check`` and for tests (which must not read a store's tables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pynetdrv.store.base import Allocation, EndpointRecord, NetworkRecord, PoolRecord


@dataclass(frozen=True)
class StateSnapshot:
    """One consistent read of the state file."""

    networks: tuple[NetworkRecord, ...] = ()
    endpoints: tuple[EndpointRecord, ...] = ()
    pools: tuple[PoolRecord, ...] = ()
    allocations: dict[str, tuple[Allocation, ...]] = field(default_factory=dict)
    #: Each pool's free addresses as disjoint [first, last] intervals (as
    #: integers), in address order.
    free_ranges: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
