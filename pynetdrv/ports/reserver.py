"""Host ports held for published ports.

The kernel is the judge of who owns a port: for each binding pynetdrv binds a
socket to ``host_ip:host_port`` and keeps it (TCP: bound, never listening;
UDP: bound, never read).  Traffic to the port is DNATed to the container
before it could reach the socket, but a process on the host that tries to
take the port, or a second binding of ours, gets EADDRINUSE; and a port some
process already holds refuses our bind, so the container start fails with a
clear error instead of silently stealing that process's traffic.

Where the kernel cannot make a socket of the protocol (SCTP without the sctp
module), no host process can hold such a port either; then our own table of
bindings is the only claim to check.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from typing import Protocol

from pynetdrv.dataplane.netns_call import in_netns
from pynetdrv.errors import Conflict, Unavailable

from .bindings import PortRequest

log = logging.getLogger(__name__)

Key = tuple[str, str, int]  # proto, host ip, port
SOCK_TYPES = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0),
              "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}
#: Where ``-P`` ports come from when the kernel cannot choose (no socket):
#: Docker's own dynamic range.
DYNAMIC = (49153, 65535)


class PortReserver(Protocol):
    async def reserve(self, request: PortRequest) -> int:
        """Hold a port of ``request``'s range on its host IP; returns the port.
        Raises Conflict when every port of the range is taken."""

    async def release(self, proto: str, host_ip: str, port: int) -> None:
        """Let the port go; idempotent."""

    def held(self) -> set[Key]: ...

    def close(self) -> None: ...


def _overlaps(a: Key, b: Key) -> bool:
    return a[0] == b[0] and a[2] == b[2] and (a[1] == b[1] or "0.0.0.0" in (a[1], b[1]))


class PortTable:
    """Our own claims; shared logic of the real and the fake reserver."""

    def __init__(self) -> None:
        self._claims: dict[Key, socket.socket | None] = {}
        # Reservations run in worker threads (a netns needs its own thread).
        self._mutex = threading.Lock()

    def held(self) -> set[Key]:
        return set(self._claims)

    def clashes(self, key: Key) -> bool:
        return any(_overlaps(key, other) for other in self._claims)

    def candidates(self, request: PortRequest) -> range:
        if request.first == 0:
            return range(DYNAMIC[0], DYNAMIC[1] + 1)
        return range(request.first, request.last + 1)


def _refused(request: PortRequest, why: str) -> Conflict:
    return Conflict(f"cannot publish {request.describe()}: {why}")


class SocketReserver(PortTable):
    def __init__(self, netns: str | None = None) -> None:
        super().__init__()
        self._netns = netns

    async def reserve(self, request: PortRequest) -> int:
        return await in_netns(self._netns, lambda: self._reserve(request))

    def _reserve(self, request: PortRequest) -> int:
        with self._mutex:
            return self._reserve_locked(request)

    def _reserve_locked(self, request: PortRequest) -> int:
        kind, proto = SOCK_TYPES[request.proto]
        if request.first == 0:
            # Any port: let the kernel choose one that no one holds.
            sock = self._bind(kind, proto, request.host_ip, 0)
            if sock is not None:
                port = sock.getsockname()[1]
                if not self.clashes((request.proto, request.host_ip, port)):
                    self._claims[(request.proto, request.host_ip, port)] = sock
                    return int(port)
                sock.close()
        last_error = "already in use"
        for port in self.candidates(request):
            key = (request.proto, request.host_ip, port)
            if self.clashes(key):
                last_error = "already published by pynetdrv"
                continue
            try:
                self._claims[key] = self._bind(kind, proto, request.host_ip, port)
                return port
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise _refused(request, f"bind failed: {e.strerror}") from None
                last_error = "already in use by another process (address already in use)"
        raise _refused(request, f"host port {last_error}")

    @staticmethod
    def _bind(kind: int, proto: int, host_ip: str, port: int) -> socket.socket | None:
        """A socket bound to host_ip:port, or None when the kernel has no
        such protocol.  OSError (EADDRINUSE, EADDRNOTAVAIL) goes up."""
        try:
            sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC, proto)
        except OSError as e:
            if e.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT):
                return None
            raise Unavailable(f"cannot create a socket to hold a port: {e.strerror}") from None
        try:
            if kind == socket.SOCK_DGRAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            sock.bind((host_ip, port))
        except OSError:
            sock.close()
            raise
        return sock

    async def release(self, proto: str, host_ip: str, port: int) -> None:
        with self._mutex:
            sock = self._claims.pop((proto, host_ip, port), None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._mutex:
            for sock in self._claims.values():
                if sock is not None:
                    sock.close()
            self._claims.clear()
