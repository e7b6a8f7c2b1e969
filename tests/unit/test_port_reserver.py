"""SocketReserver with real sockets on 127.0.0.1 (unprivileged ports, no root): the kernel
judges conflicts with other processes and with our own bindings."""

from __future__ import annotations

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
