"""systemd socket activation and readiness, in the standard library only.

``listen_fds()`` is sd_listen_fds(3): the sockets systemd (or
``systemd-socket-activate``) opened for us and passed from fd 3 on, named by
``LISTEN_FDNAMES``.  ``notify("READY=1")`` is sd_notify(3): one datagram to
``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket).

Outside systemd both do nothing: ``listen_fds()`` returns ``[]`` and
``notify()`` returns False, so ``pynetdrv serve`` binds its own socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass

#: The first passed file descriptor (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID")


@dataclass(frozen=True)
class ListenSocket:
    """One inherited socket and the name systemd gave it (FileDescriptorName=,
    by default the socket unit's name, e.g. ``pynetdrv.socket``)."""

    sock: socket.socket
    name: str


def listen_fds(
    environ: MutableMapping[str, str] | None = None, *, unset_environment: bool = True
) -> list[ListenSocket]:
    """The sockets passed to this process by socket activation, or ``[]``.

    Like sd_listen_fds(3): only if ``LISTEN_PID`` is this process (the
    variables may have been inherited by a child that is not meant to take
    the sockets); the variables are removed afterwards (``unset_environment``)
    so that our own children do not see them; the fds get close-on-exec.
    ValueError names a malformed variable or a passed fd that is not a socket.
    """
    env = os.environ if environ is None else environ
    try:
        return _take(env, LISTEN_FDS_START)
    finally:
        if unset_environment:
            for key in _VARIABLES:
                env.pop(key, None)


def _take(env: MutableMapping[str, str], first_fd: int) -> list[ListenSocket]:
    pid_text = env.get("LISTEN_PID")
    if pid_text is None:
        return []
    if not pid_text.isdigit():
        raise ValueError(f"LISTEN_PID={pid_text!r} is not a process id")
    if int(pid_text) != os.getpid():
        return []
    count_text = env.get("LISTEN_FDS", "0")
    if not count_text.isdigit():
        raise ValueError(f"LISTEN_FDS={count_text!r} is not a number")
    count = int(count_text)
    names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
    if names and len(names) != count:
        raise ValueError(f"LISTEN_FDNAMES has {len(names)} names for LISTEN_FDS={count}")
    taken: list[ListenSocket] = []
    for i in range(count):
        fd = first_fd + i
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
        except OSError as e:
            for t in taken:
                t.sock.detach()  # not ours to close: leave the fds as they came
            raise ValueError(f"passed fd {fd} (LISTEN_FDS={count}) is not a usable socket: {e.strerror}") from None
        taken.append(ListenSocket(sock, names[i] if names else "unknown"))
    return taken


def unix_listener(sockets: list[ListenSocket]) -> socket.socket | None:
    """The one listening AF_UNIX stream socket among the passed ones (what
    ``pynetdrv serve`` serves on), or None if none was passed.  ValueError if
    there are several: which one to serve would be a guess."""
    found = [s.sock for s in sockets if s.sock.family == socket.AF_UNIX and s.sock.type == socket.SOCK_STREAM]
    if len(found) > 1:
        names = ", ".join(str(s.getsockname()) for s in found)
        raise ValueError(f"socket activation passed {len(found)} unix stream sockets ({names}); expected one")
    return found[0] if found else None


def activated_unix_socket(environ: MutableMapping[str, str] | None = None) -> socket.socket | None:
    """What ``pynetdrv serve`` listens on when socket-activated (see
    ``serving_socket``), or None if nothing was passed to this process
    (LISTEN_PID unset or another process's: serve binds its own)."""
    sockets = listen_fds(environ)
    return serving_socket(sockets) if sockets else None


def serving_socket(sockets: list[ListenSocket]) -> socket.socket:
    """The one listening unix stream socket with a file path among ``sockets``;
    the others are closed.  ValueError names what is wrong: no unix stream
    socket among them, several, one that is not listening or has no path
    (abstract or unnamed: Docker finds plugins by file); all are closed then."""
    try:
        sock = unix_listener(sockets)
        if sock is None:
            kinds = ", ".join(_describe(s.sock) for s in sockets)
            raise ValueError(f"socket activation passed {len(sockets)} fd(s) ({kinds}) but no unix stream socket; "
                             "expected one ListenStream=/path socket")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError(f"socket activation passed a unix stream socket that is not listening ({_describe(sock)})")
        path = sock.getsockname()
        if not (isinstance(path, str) and path.startswith("/")):
            raise ValueError(f"socket activation passed a unix socket without a file path ({path!r}); "
                             "Docker finds plugins by file: use ListenStream=/run/docker/plugins/NAME.sock")
    except ValueError:
        for s in sockets:
            s.sock.close()
        raise
    for s in sockets:
        if s.sock is not sock:
            s.sock.close()
    return sock


def _describe(sock: socket.socket) -> str:
    family = getattr(sock.family, "name", str(sock.family))
    kind = getattr(sock.type, "name", str(sock.type))
    return f"fd {sock.fileno()}: {family} {kind}"


def notify(state: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"STOPPING=1"``,
    ``"STATUS=..."``) to the service manager.  False if there is none
    (``NOTIFY_SOCKET`` unset); OSError if it cannot be reached; ValueError
    for an address of a kind we do not speak."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        target = "\0" + address[1:]  # Linux abstract namespace
    elif address.startswith("/"):
        target = address
    else:
        raise ValueError(f"NOTIFY_SOCKET={address!r}: expected an absolute path or @abstract-name")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(target)
        sock.sendall(state.encode())
    return True
