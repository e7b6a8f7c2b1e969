"""An in-memory Firewall for unit tests: remembers the last state applied."""

from __future__ import annotations

from pynetdrv.firewall.base import FirewallError
from pynetdrv.firewall.model import FirewallState


class FakeFirewall:
    def __init__(self) -> None:
        self.state = FirewallState()
        self.applies = 0
        self.removals = 0
        #: Set to make the next apply fail (and leave the state unchanged).
        self.fail_next: str | None = None

    async def apply(self, state: FirewallState) -> None:
        if self.fail_next is not None:
            message, self.fail_next = self.fail_next, None
            raise FirewallError(message)
        self.applies += 1
        self.state = state

    async def remove_all(self) -> None:
        self.removals += 1
        self.state = FirewallState()

    async def drift(self, state: FirewallState) -> list[str]:
        return [] if state == self.state else ["fake firewall differs"]
