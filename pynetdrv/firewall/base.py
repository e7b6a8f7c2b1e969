"""The Firewall protocol: the driver hands over the whole desired state, the
backend makes the kernel match it.  Declarative on purpose: one code path
serves a new network, a published port, a restart after a reboot and a
ruleset someone flushed, and a half-applied change cannot accumulate."""

from __future__ import annotations

from typing import Protocol

from pynetdrv.dataplane.base import DataplaneError

from .model import FirewallState


class FirewallError(DataplaneError):
    """A firewall step failed; the message names the command and the reason."""


class Firewall(Protocol):
    async def apply(self, state: FirewallState) -> None:
        """Make this instance's rules exactly what ``state`` needs (atomically
        per table).  An empty state removes our chains and jumps entirely."""

    async def remove_all(self) -> None:
        """Remove this instance's chains and the jumps to them; idempotent."""

    async def drift(self, state: FirewallState) -> list[str]:
        """How the kernel differs from ``state``, one line per difference
        (missing or unexpected rule or jump); empty when they agree."""
