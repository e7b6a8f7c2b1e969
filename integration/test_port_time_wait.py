"""Issue 11: publishing a host port right after it was used (connections in TIME_WAIT) works at
once, as on Docker's bridge, and a published port stays ours: no host process takes it, with or
without SO_REUSEADDR. Runs against pynetdrv and (first engine only) Docker's bridge."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from integration.docker_objects import Container, Network
from integration.outside_host import ask_from_host
from integration.tcp_state import leave_time_wait, time_wait_on

DRIVERS = ["pynetdrv", pytest.param("bridge", marks=pytest.mark.once)]
FIRST_PORT = 18900


def host_port() -> int:
    for port in range(FIRST_PORT, FIRST_PORT + 100):
        try:
            with socket.socket() as s:
                s.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
    raise AssertionError("no free host port")


def steal(port: int, reuse: bool) -> str:
    with socket.socket() as s:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            s.listen()
        except OSError as e:
            assert e.errno == errno.EADDRINUSE, e
            return "refused"
        return "taken"


def eventually(probe: Callable[[], str | None], want: str, tries: int = 20) -> str | None:
    got = None
    for _ in range(tries):
        got = probe()
        if got is not None and got.startswith(want):
            return got
        time.sleep(0.5)
    return got


@pytest.mark.parametrize("driver", DRIVERS)
def test_docker_run_publishes_a_port_in_time_wait_at_once(driver: str, make_network: Callable[..., Any],
                                                          make_container: Callable[..., Container],
                                                          subnets: Any) -> None:
    if driver == "pynetdrv":
        net: Network = make_network("--subnet", str(subnets.v4()))
    else:
        net = make_network("--subnet", str(subnets.v4()), driver="bridge", ipam=None)
    port = host_port()
    leave_time_wait(port)
    assert time_wait_on(port), f"the reproduction left no TIME_WAIT on port {port}"
    cmd = ["sh", "-c", "mkdir -p /www && echo tw-token > /www/index.html && exec httpd -f -p 80 -h /www"]
    c = make_container(net, "-p", f"{port}:80", cmd=cmd, check=False)
    assert c.result is not None and c.result.ok, f"docker run -p {port}:80 on {driver}: {c.result}"
    assert time_wait_on(port), "TIME_WAIT ended before the publish: the test proved nothing"
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "tw-token"), "the published port serves"
    # ... and the port is the container's: no host process takes it, with or without SO_REUSEADDR.
    assert steal(port, reuse=False) == "refused"
    assert steal(port, reuse=True) == "refused"
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "tw-token"), "still the container's"

