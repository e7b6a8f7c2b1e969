"""An "outside host" for the external-connectivity tests: a network namespace of the
test's own, linked to the host by a veth (host 10.230.0.1, outside 10.230.0.2) and with
no route back to any container subnet, so container traffic reaches it only NATed by the
host. Servers and clients run there with the host's Python (tests/netns/peer_io.py)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from integration.cmd import run
from integration.host import host_routes

PEER_IO = Path(__file__).resolve().parents[1] / "tests" / "netns" / "peer_io.py"
NS = "pnit-outside"
HOST_LINK = "pnit-out0"
SUBNET = ipaddress.IPv4Network("10.230.0.0/24")
HOST_ADDR = "10.230.0.1"
ADDR = "10.230.0.2"


class OutsideHost:
    ns = NS
    addr = ADDR
    host_addr = HOST_ADDR

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[str]] = []

    def serve(self, proto: str, port: int, token: str) -> None:
        """A server here answering "TOKEN PEER-IP" (http: to GET /)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", NS, sys.executable, str(PEER_IO), "serve", proto, "0.0.0.0", str(port), token],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "outside server did not start"

    def ask(self, proto: str, addr: str, port: int) -> str | None:
        out = run(["ip", "netns", "exec", NS, sys.executable, str(PEER_IO), "ask", proto, addr, str(port)],
                  check=False, timeout=20)
        return out.strip() if out.ok else None

    def route_to(self, subnet: str) -> None:
        """Give the outside host a route back to a container subnet, via the host."""
        run(["ip", "-n", NS, "route", "replace", subnet, "via", HOST_ADDR])

    def close(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def ask_from_host(proto: str, addr: str, port: int) -> str | None:
    out = run([sys.executable, str(PEER_IO), "ask", proto, addr, str(port)], check=False, timeout=20)
    return out.strip() if out.ok else None


@contextmanager
def outside_host() -> Iterator[OutsideHost]:
    clash = [str(net) for net, _ in host_routes() if net.version == 4 and net.overlaps(SUBNET)]
    assert not clash, f"{SUBNET} (the outside host's link) overlaps host routes {clash}"
    _remove()
    run(["ip", "netns", "add", NS])
    host = OutsideHost()
    try:
        run(["ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", "eth0", "netns", NS])
        run(["ip", "addr", "add", f"{HOST_ADDR}/24", "dev", HOST_LINK])
        run(["ip", "link", "set", HOST_LINK, "up"])
        run(["ip", "-n", NS, "addr", "add", f"{ADDR}/24", "dev", "eth0"])
        run(["ip", "-n", NS, "link", "set", "eth0", "up"])
        run(["ip", "-n", NS, "link", "set", "lo", "up"])
        yield host
    finally:
        host.close()
        _remove()


def _remove() -> None:
    run(["ip", "link", "del", HOST_LINK], check=False)
    run(["ip", "netns", "del", NS], check=False)
