"""An AsyncIPRoute that records every netlink message it sends (type and
flags), handed to NetlinkDataplane(socket_factory=...): counts what the
dataplane really asks of the kernel, without patching its internals.  It can
also fail one message type once, to test undo paths."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK

NAMES = {RTM_NEWLINK: "newlink", RTM_GETLINK: "getlink", RTM_DELLINK: "dellink"}


class CountingIPRoute(AsyncIPRoute):
    def __init__(self, *args: Any, journal: list[list[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: One list per send: the message kinds in it ("getlink", "newlink", ...);
        #: shared with other sockets when ``journal`` is given.
        self.sends: list[list[str]] = journal if journal is not None else []
        #: (message kinds of a send, errno): the next send of exactly those fails.
        self.fail_next: tuple[list[str], int] | None = None

    def send(self, data: bytes, flags: int = 0) -> Any:
        kinds = message_kinds(data)
        self.sends.append(kinds)
        if self.fail_next is not None and self.fail_next[0] == kinds:
            code, self.fail_next = self.fail_next[1], None
            raise NetlinkError(code, "injected by CountingIPRoute")
        return super().send(data, flags)

    def writes(self) -> list[list[str]]:
        """The sends that carried anything but a read."""
        return [s for s in self.sends if any(k != "getlink" for k in s)]


def message_kinds(data: bytes) -> list[str]:
    kinds, off = [], 0
    while off < len(data):
        length, kind = struct.unpack_from("IH", data, off)
        kinds.append(NAMES.get(kind, str(kind)))
        off += (length + 3) & ~3
    return kinds


def counting_sockets(
    thread_journal: list[list[str]] | None = None,
) -> tuple[Callable[..., CountingIPRoute], type[IPRoute]]:
    """Factories for NetlinkDataplane(socket_factory=..., slow_socket_factory=...)
    whose sockets (the loop's, and the worker thread's synchronous one) record
    their sends in one journal, in send order; the worker thread's sends also
    go to ``thread_journal``."""
    journal: list[list[str]] = []
    on_thread = thread_journal if thread_journal is not None else []

    class CountingSyncIPRoute(IPRoute):  # type: ignore[misc]
        # pyroute2's IPRoute builds its async core itself: count at that
        # core's send, the one place every request passes.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            send = self.asyncore.send

            def counted(data: bytes, flags: int = 0) -> Any:
                journal.append(message_kinds(data))
                on_thread.append(message_kinds(data))
                return send(data, flags)

            self.asyncore.send = counted

    return functools.partial(CountingIPRoute, journal=journal), CountingSyncIPRoute
