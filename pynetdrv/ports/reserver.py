"""Host ports held for published ports.

The kernel is the judge of who owns a port: for each binding pynetdrv binds a
socket to ``host_ip:host_port`` and keeps it.  Traffic to the port is DNATed
to the container before it could reach the socket, but a process on the host
that tries to take the port, or a second binding of ours, gets EADDRINUSE;
and a port some process already holds refuses our bind, so the container
start fails with a clear error instead of silently stealing that process's
traffic.

How each protocol is held (as Docker's bridge driver holds them, moby
daemon/libnetwork/portallocator/osallocator_linux.go ``bindTCPOrUDP``):

- TCP: SO_REUSEADDR, bound, then *listening* with a drop-all socket filter.
  SO_REUSEADDR lets the bind succeed while connections of a process that
  just served the port sit in TIME_WAIT (a minute; without it the publish
  fails although nobody holds the port).  A socket that is merely bound with
  SO_REUSEADDR would not stop another SO_REUSEADDR socket from binding (and
  then listening on) the same port; a listening one does, for every other
  socket, unless both set SO_REUSEPORT under one uid, and we never set
  SO_REUSEPORT.  The filter drops anything that reaches the socket instead of
  DNAT (a SYN in the moment before the rules exist): the client retransmits,
  nothing waits forever in our accept queue.
- UDP: bound, no SO_REUSEADDR (UDP has no TIME_WAIT, and two UDP sockets
  that both set SO_REUSEADDR may share a port: the option would let another
  process in), drop-all filter so datagrams never pile up.
- SCTP: bound, no SO_REUSEADDR (nothing like TIME_WAIT holds the port).

Where the kernel cannot make a socket of the protocol (SCTP without the sctp
module), no host process can hold such a port either; then our own table of
bindings is the only claim to check.
"""

from __future__ import annotations

import ctypes
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
#: linux/socket.h; Python's socket module does not name it.
SO_ATTACH_FILTER = 26


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def drop_everything(sock: socket.socket) -> None:
    """Attach the classic BPF program ``ret #0``: the kernel drops every packet
    for the socket (a SYN, a datagram) before it is queued."""
    program = (_SockFilter * 1)(_SockFilter(0x06, 0, 0, 0))  # BPF_RET | BPF_K, 0
    fprog = _SockFprog(1, ctypes.cast(program, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # the kernel copies the program


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
        tcp = kind == socket.SOCK_STREAM and proto == 0
        try:
            if tcp:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if proto == 0:
                drop_everything(sock)
            if kind == socket.SOCK_DGRAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            sock.bind((host_ip, port))
            if tcp:
                # Listening is what keeps others out (see the module doc); a
                # socket of another process that is bound with SO_REUSEADDR
                # but not listening makes this fail with EADDRINUSE.
                sock.listen(0)
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
