"""How ``NetlinkDataplane.ensure_veth`` schedules its kernel requests.

The Dataplane protocol states only what the kernel must look like; these
are the netlink implementation's own decisions, from what it has seen:

- **Add first or read first.**  A pair this dataplane has never seen (not in
  its last link dump, not made or repaired by it since) most likely does not
  exist yet: CreateEndpoint of a new endpoint, or reconcile recreating one.
  Creating it at once saves a read.  A pair it knows is read first (Join,
  reconcile's repair): a healthy one then costs that one read.  A wrong guess
  costs only a request: the add meets EEXIST and the careful path decides.
- **On the loop or off it.**  The kernel holds the sender ~1 ms during a veth
  add.  Alone, sending from the loop is cheapest (the thread hand-off would
  be most of the cost).  While other ensure_veth calls are in flight, or they
  come back to back (one network's CreateEndpoint calls take turns at its
  lock, so a burst of container starts reaches us one at a time, each within
  moments of the last), the add goes to the worker thread so the loop keeps
  answering.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

#: Adds closer together than this are a burst: within one, only a store
#: write and a lock hand-off separate two adds (30 CreateEndpoint at once on
#: one network, SQLite state file, this 2-core test machine under load from
#: other jobs: median 1.7 ms, max 33 ms apart), while separate `docker run`s
#: are a container start (hundreds of ms) apart.
BURST_WINDOW = 0.05


class VethPacing:
    def __init__(self, burst_window: float = BURST_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = burst_window
        self._clock = clock
        #: Host-end names of pairs seen to exist.
        self._known: set[str] = set()
        self._in_flight = 0
        self._last_add: float | None = None

    @contextmanager
    def ensuring(self) -> Iterator[None]:
        """Around one ensure_veth call."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def likely_new(self, host_name: str) -> bool:
        return host_name not in self._known

    def exists(self, host_name: str) -> None:
        self._known.add(host_name)

    def gone(self, host_name: str) -> None:
        self._known.discard(host_name)

    def dumped(self, veth_names: Iterable[str]) -> None:
        """A full dump of our veths: what it shows is what exists."""
        self._known = set(veth_names)

    def add_off_loop(self) -> bool:
        """Called as an add is sent: should it leave the loop?"""
        now = self._clock()
        recent = self._last_add is not None and now - self._last_add < self._window
        self._last_add = now
        return self._in_flight > 1 or recent
