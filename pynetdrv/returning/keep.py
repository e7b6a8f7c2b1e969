"""Keeping the addresses of containers dockerd starts again, and giving them back.

dockerd announces its start by loading us as its IPAM driver: libnetwork asks
``/IpamDriver.GetCapabilities`` once, when it registers the driver.  For ``window`` seconds
after, a *dynamic* address released that was handed out before that start (not one of a
container that came and went since) is kept for its pool, unless the record (``record``) says
its container does not come back (no restart policy).  For ``window`` seconds after its
release, the pool's next automatic request gets it, if it is the pool's only kept address.

Only then: Docker starts the returning containers in parallel, and nothing in a request says
which container asks.  With one returning container per network on this host (the common
case across hosts) it is exact; with two or more their addresses are not handed round at
random (whoever reached one container by address would reach another): they get new ones,
and the log says so.  Nothing is held back from anyone meanwhile: the address is free in the
store, and one another allocator took (only possible after its round robin wrapped) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from pynetdrv.returning.record import Holder

log = logging.getLogger(__name__)

#: Seconds: how long after dockerd's start its releases are kept, and how long after its
#: release an address waits for its container.
WINDOW_S = 120.0


class ReturningAddresses:
    def __init__(self, holders: Mapping[str, Holder] | None = None, window: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        #: address -> its container, as Docker last said (record.load, then the watch).
        self.holders: Mapping[str, Holder] = dict(holders or {})
        #: Set when an address is handed out: a container is starting; the watch reads Docker soon.
        self.activity = asyncio.Event()
        self._started: float | None = None
        #: (pool, address) handed out since dockerd started: not a returning container's.
        self._fresh: set[tuple[str, str]] = set()
        #: pool -> {address: kept until}, in release order.
        self._kept: dict[str, dict[str, float]] = {}
        self._told: set[str] = set()

    def docker_started(self) -> None:
        self._started = self._clock()
        self._fresh.clear()
        self._told.clear()

    def _open(self) -> bool:
        return self._started is not None and self._clock() - self._started <= self.window

    def handed_out(self, pool_id: str, address: str) -> None:
        """After any RequestAddress: a kept address asked for by ``--ip`` is not waiting any more."""
        self.activity.set()
        self._kept.get(pool_id, {}).pop(address, None)
        if self._open():
            self._fresh.add((pool_id, address))

    def wants(self, pool_id: str, address: str) -> bool:
        """Whether this address, about to be released, may be a returning container's: dockerd
        started less than ``window`` ago, the address predates that, and its container, if Docker
        told us, has a restart policy."""
        if not self._open() or (pool_id, address) in self._fresh:
            return False
        holder = self.holders.get(address)
        if holder is not None and not holder.comes_back:
            log.info("address %s of container %s not kept: its restart policy (%s) does not bring it back",
                     address, holder.name, holder.policy or "no")
            return False
        return True

    def keep(self, pool_id: str, address: str) -> None:
        self._kept.setdefault(pool_id, {})[address] = self._clock() + self.window
        holder = self.holders.get(address)
        whose = f"container {holder.name} (restart policy {holder.policy})" if holder else "a container Docker " \
            "has not told us about"
        log.info("address %s of %s kept %.0f s for its return", address, whose, self.window)

    def _live(self, pool_id: str) -> dict[str, float]:
        now = self._clock()
        kept = {a: until for a, until in self._kept.get(pool_id, {}).items() if now <= until}
        if kept:
            self._kept[pool_id] = kept
        else:
            self._kept.pop(pool_id, None)
        return kept

    def take(self, pool_id: str) -> str | None:
        """The pool's kept address, removed, if it is the only one within its wait; else None."""
        kept = self._live(pool_id)
        if len(kept) == 1:
            address = next(iter(kept))
            del self._kept[pool_id]
            return address
        if kept and pool_id not in self._told:
            self._told.add(pool_id)
            names = ", ".join(sorted(f"{a} ({h.name})" if (h := self.holders.get(a)) else a for a in kept))
            log.warning("%d containers dockerd starts again had addresses in pool %s (%s); Docker does not say "
                        "which one asks, so they get new addresses rather than one another's", len(kept), pool_id,
                        names)
        return None

    def forget_pool(self, pool_id: str) -> None:
        self._kept.pop(pool_id, None)
        self._fresh = {k for k in self._fresh if k[0] != pool_id}

    def kept(self, pool_id: str) -> list[str]:
        """The pool's kept addresses still within their wait, in release order."""
        return list(self._live(pool_id))
