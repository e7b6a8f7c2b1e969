"""SocketReserver with real sockets on 127.0.0.1 (unprivileged ports, no root): the kernel
judges conflicts with other processes and with our own bindings."""

from __future__ import annotations

import errno
import socket

import pytest

from pynetdrv.errors import Conflict
from pynetdrv.ports.bindings import PortRequest
from pynetdrv.ports.reserver import SocketReserver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def reserver() -> SocketReserver:
    r = SocketReserver()
    yield r
    r.close()


def can_bind(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.parametrize(("proto", "kind"), [("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)])
async def test_a_held_port_is_taken_for_everyone_until_released(reserver: SocketReserver, proto: str,
                                                               kind: int) -> None:
    port = free_port()
    assert await reserver.reserve(PortRequest(proto, "127.0.0.1", port, port, 80)) == port  # type: ignore[arg-type]
    assert not can_bind(port, kind), "another process could take the published port"
    with pytest.raises(Conflict, match=str(port)):
        await reserver.reserve(PortRequest(proto, "0.0.0.0", port, port, 81))  # type: ignore[arg-type]
    await reserver.release(proto, "127.0.0.1", port)
    await reserver.release(proto, "127.0.0.1", port)  # idempotent
    assert can_bind(port, kind)


async def test_a_port_a_process_listens_on_is_refused(reserver: SocketReserver) -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(Conflict, match="already in use"):
            await reserver.reserve(PortRequest("tcp", "127.0.0.1", port, port, 80))
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # still the process's
    assert reserver.held() == set()


def consecutive_free_ports() -> int:
    for _ in range(100):
        first = free_port()
        if can_bind(first + 1):
            return first
    raise AssertionError("no two consecutive free ports")


async def test_range_skips_taken_ports_and_any_port_is_chosen(reserver: SocketReserver) -> None:
    first = consecutive_free_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        got = await reserver.reserve(PortRequest("tcp", "127.0.0.1", first, first + 1, 80))
    assert got == first + 1
    chosen = await reserver.reserve(PortRequest("tcp", "127.0.0.1", 0, 0, 81))
    assert chosen > 0 and not can_bind(chosen)


# ---- TIME_WAIT (issue 11) and keeping the port ours -------------------------------------------------


def leave_time_wait(port: int) -> None:
    """What a server that just served ``port`` leaves behind: it listened (with SO_REUSEADDR, as
    servers and docker-proxy do), a client connected, the server side closed first (so the
    server's end of the connection sits in TIME_WAIT for a minute), and the server exited."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side goes FIN_WAIT -> TIME_WAIT
        assert client.recv(1) == b""  # the client saw the FIN
        client.close()


def time_wait_on(port: int) -> bool:
    """Is a connection with local port ``port`` in TIME_WAIT (state 06 in /proc/net/tcp)?"""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(int(r[1].split(":")[1], 16) == port and r[3] == "06" for r in rows)


def plain_bind_fails(port: int, host_ip: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host_ip, port))
        except OSError as e:
            assert e.errno == errno.EADDRINUSE, e
            return True
        return False


@pytest.mark.parametrize("host_ip", ["127.0.0.1", "0.0.0.0"])
async def test_a_port_in_time_wait_is_published_at_once(reserver: SocketReserver, host_ip: str) -> None:
    port = free_port()
    leave_time_wait(port)
    # The TIME_WAIT is real: the kernel shows it, and a bind without SO_REUSEADDR is refused.
    assert time_wait_on(port), f"no TIME_WAIT on port {port}; the reproduction did not work"
    assert plain_bind_fails(port, host_ip)
    got = await reserver.reserve(PortRequest("tcp", host_ip, port, port, 80))
    assert got == port
    assert reserver.held() == {("tcp", host_ip, port)}


STEALERS = {
    "plain": [],
    "SO_REUSEADDR": [socket.SO_REUSEADDR],
    "SO_REUSEADDR+SO_REUSEPORT": [socket.SO_REUSEADDR, socket.SO_REUSEPORT],
}


def steal(kind: int, options: list[int], host_ip: str, port: int) -> str:
    """Try to take ``host_ip:port`` as another program would; the step that failed, or 'taken'."""
    with socket.socket(socket.AF_INET, kind) as s:
        for option in options:
            s.setsockopt(socket.SOL_SOCKET, option, 1)
        try:
            s.bind((host_ip, port))
        except OSError as e:
            assert e.errno == errno.EADDRINUSE, e
            return "bind refused"
        if kind == socket.SOCK_STREAM:
            try:
                s.listen()
            except OSError as e:
                assert e.errno == errno.EADDRINUSE, e
                return "listen refused"
        return "taken"


@pytest.mark.parametrize("held_ip", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("stealer_ip", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("options", STEALERS.values(), ids=STEALERS.keys())
@pytest.mark.parametrize(("proto", "kind"), [("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)])
async def test_no_other_socket_can_take_a_held_port(reserver: SocketReserver, proto: str, kind: int,
                                                    options: list[int], held_ip: str, stealer_ip: str) -> None:
    port = free_port()
    await reserver.reserve(PortRequest(proto, held_ip, port, port, 80))  # type: ignore[arg-type]
    assert steal(kind, options, stealer_ip, port) == "bind refused"
    await reserver.release(proto, held_ip, port)
    assert steal(kind, options, stealer_ip, port) == "taken"  # the check above can fail


async def test_a_held_tcp_port_even_resists_a_time_wait_reservation(reserver: SocketReserver) -> None:
    # Our own second reservation uses SO_REUSEADDR too; the first one listening still wins.
    port = free_port()
    await reserver.reserve(PortRequest("tcp", "0.0.0.0", port, port, 80))
    other = SocketReserver()
    try:
        with pytest.raises(Conflict, match="already in use by another process"):
            await other.reserve(PortRequest("tcp", "127.0.0.1", port, port, 80))
    finally:
        other.close()


async def test_a_socket_bound_earlier_with_so_reuseaddr_cannot_listen_once_we_hold_the_port(
        reserver: SocketReserver) -> None:
    # A TCP socket that is bound but not listening receives nothing: the kernel lets our
    # SO_REUSEADDR bind and listen succeed beside it (Docker's bridge behaves the same), and
    # from then on that socket can never become the port's listener.
    port = free_port()
    with socket.socket() as early:
        early.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        early.bind(("127.0.0.1", port))
        await reserver.reserve(PortRequest("tcp", "127.0.0.1", port, port, 80))
        with pytest.raises(OSError) as refused:
            early.listen()
        assert refused.value.errno == errno.EADDRINUSE


async def test_a_port_a_process_listens_on_with_so_reuseaddr_is_refused(reserver: SocketReserver) -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen()
        with pytest.raises(Conflict, match="already in use by another process"):
            await reserver.reserve(PortRequest("tcp", "127.0.0.1", port, port, 80))
    assert reserver.held() == set()
    assert can_bind(port), "the refused reservation left a socket behind"


async def test_connections_reaching_a_held_port_are_dropped_not_queued(reserver: SocketReserver) -> None:
    # No DNAT here, so a client reaches our socket itself: the drop-all filter eats its SYN.
    port = free_port()
    await reserver.reserve(PortRequest("tcp", "127.0.0.1", port, port, 80))
    with pytest.raises((TimeoutError, socket.timeout)):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
