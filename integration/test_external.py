"""External connectivity, driver-agnostic: every test runs against pynetdrv AND against
Docker's built-in bridge with the same docker commands and option names, because the
built-in bridge's behaviour is what users know. The outside host is a network namespace
of the test's own (outside_host.py); it has no route back to container subnets unless a
test gives it one."""

from __future__ import annotations

import itertools
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration.cmd import run
from integration.constants import PLUGIN
from integration.docker_objects import Container, Network, docker, ping
from integration.outside_host import PEER_IO, OutsideHost, ask_from_host, outside_host
from integration.pynetdrv_daemon import FIREWALL_CHECK_SECONDS

# Docker's bridge describes the behaviour users know: checking it on the first engine of a
# run is enough; pynetdrv runs on every engine.
DRIVERS = ["pynetdrv", pytest.param("bridge", marks=pytest.mark.once)]
_ports = itertools.count(18100)


@pytest.fixture(params=DRIVERS)
def net_factory(request: pytest.FixtureRequest, make_network: Callable[..., Any]) -> Callable[..., Network]:
    """make(*docker network create args) on the driver under test."""
    if request.param == "pynetdrv":
        return lambda *args: make_network(*args)
    return lambda *args: make_network(*args, driver="bridge", ipam=None)


@pytest.fixture
def outside() -> Iterator[OutsideHost]:
    with outside_host() as host:
        yield host


def host_port() -> int:
    """A host port nothing on this machine holds (TCP and UDP), fresh for each use."""
    for port in _ports:
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
    raise AssertionError("no free host port")


def web(make_container: Callable[..., Container], net: Network, token: str, *publish: str) -> Container:
    """A container serving ``token`` over HTTP on port 80 (busybox httpd)."""
    cmd = ["sh", "-c", f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 80 -h /www"]
    return make_container(net, *[a for p in publish for a in ("-p", p)], cmd=cmd)


def fetch(c: Container, url: str) -> str | None:
    # busybox wget crashes with -T: bound it with timeout instead.
    out = c.exec("timeout", "5", "wget", "-q", "-O-", url, check=False, timeout=20)
    return out.strip() if out.ok else None


def eventually(probe: Callable[[], str | None], want: str, tries: int = 10) -> str | None:
    """Retry a probe a few times (a port right after `docker run` may not serve yet)."""
    got = None
    for _ in range(tries):
        got = probe()
        if got is not None and got.startswith(want):
            return got
        time.sleep(0.5)
    return got


def test_outbound_traffic_is_masqueraded(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    c = make_container(net)
    outside.serve("http", 8000, "outside")
    assert eventually(lambda: fetch(c, f"http://{outside.addr}:8000/"), "outside") == f"outside {outside.host_addr}"
    ping(c, outside.addr)


def test_masquerade_can_be_disabled(net_factory, make_container, subnets, outside):
    sub = subnets.v4()
    net = net_factory("--subnet", str(sub), "-o", "com.docker.network.bridge.enable_ip_masquerade=false")
    c = make_container(net)
    outside.serve("http", 8000, "outside")
    # Not NATed: the outside host sees the container's own address, so it can answer
    # only once it has a route back.
    assert fetch(c, f"http://{outside.addr}:8000/") is None
    outside.route_to(str(sub))
    assert eventually(lambda: fetch(c, f"http://{outside.addr}:8000/"), "outside") == f"outside {c.ip(net)}"


def test_published_tcp_port_from_everywhere(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    port = host_port()
    web(make_container, net, "web-token", f"{port}:80")
    url = f"http://{outside.host_addr}:{port}/"
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "web-token"), "from another host"
    assert eventually(lambda: ask_from_host("http", outside.host_addr, port), "web-token"), "host, own address"
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "web-token"), "host, 127.0.0.1"
    peer = make_container(net)
    assert eventually(lambda: fetch(peer, url), "web-token"), "hairpin from a container of the network"


def test_port_published_on_loopback_only(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    port = host_port()
    web(make_container, net, "lo-token", f"127.0.0.1:{port}:80")
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "lo-token")
    assert outside.ask("http", outside.host_addr, port) is None


def test_host_binding_ipv4_option(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()), "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1")
    port = host_port()
    web(make_container, net, "bind-token", f"{port}:80")
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "bind-token")
    assert outside.ask("http", outside.host_addr, port) is None


def test_published_udp_port(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    port = host_port()
    # busybox has no UDP server: borrow the host's Python, read-only.
    mounts = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro",
              "-v", f"{PEER_IO.parent}:/peer:ro"]
    make_container(net, "-p", f"{port}:53/udp", *mounts,
                   cmd=["/usr/bin/python3", "/peer/peer_io.py", "serve", "udp", "0.0.0.0", "53", "udp-token"])
    assert eventually(lambda: outside.ask("udp", outside.host_addr, port), "udp-token"), "UDP from another host"


def test_host_port_range_gives_each_container_a_port(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    first = host_port()
    while True:  # two consecutive free ports
        second = host_port()
        if second == first + 1:
            break
        first = second
    for token in ("one", "two"):
        web(make_container, net, token, f"{first}-{second}:80")
    answers = {eventually(lambda p=p: outside.ask("http", outside.host_addr, p), "") for p in (first, second)}
    assert {a.split()[0] for a in answers if a} == {"one", "two"}, answers


def test_port_conflict_is_refused_and_the_port_freed(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    port = host_port()
    first = web(make_container, net, "first", f"{port}:80")
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "first")
    refused = make_container(net, "-p", f"{port}:80", check=False)
    assert refused.result is not None and not refused.result.ok, "a second binding of the port was accepted"
    assert str(port) in refused.result.output, f"the error does not name the port: {refused.result.output}"
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "first"), "the first binding broke"
    docker("rm", "-f", first.name, refused.name)
    web(make_container, net, "third", f"{port}:80")
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "third"), "port not reusable"


def test_port_held_by_a_host_process_is_refused(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()))
    port = host_port()
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", port))
        listener.listen()
        refused = make_container(net, "-p", f"{port}:80", check=False)
        assert refused.result is not None and not refused.result.ok, "publishing a port a process holds worked"
        assert str(port) in refused.result.output, refused.result.output
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass  # the process's port still reaches the process
        conn, _ = listener.accept()
        conn.close()


def test_internal_network_is_cut_off(net_factory, make_container, subnets, outside):
    sub = subnets.v4()
    net = net_factory("--internal", "--subnet", str(sub))
    port = host_port()
    a = web(make_container, net, "internal", f"{port}:80")
    b = make_container(net)
    ping(b, a.ip(net))
    outside.serve("http", 8000, "outside")
    outside.route_to(str(sub))
    assert fetch(b, f"http://{outside.addr}:8000/") is None, "an internal network reached the outside"
    assert outside.ask("http", str(a.ip(net)), 80) is None, "the outside reached an internal network"
    assert outside.ask("http", outside.host_addr, port) is None, "a port of an internal network was published"


def test_networks_are_isolated(net_factory, make_container, subnets, outside):
    one, two = net_factory("--subnet", str(subnets.v4())), net_factory("--subnet", str(subnets.v4()))
    a, b = make_container(one), make_container(two)
    for src, dst, net in ((a, b, two), (b, a, one)):
        out = src.exec("ping", "-c1", "-W2", str(dst.ip(net)), check=False, timeout=15)
        assert not out.ok, f"{src.name} reached {dst.name} on another network"


def test_icc_disabled_separates_containers_but_not_published_ports(net_factory, make_container, subnets, outside):
    net = net_factory("--subnet", str(subnets.v4()), "-o", "com.docker.network.bridge.enable_icc=false")
    port = host_port()
    a = web(make_container, net, "icc", f"{port}:80")
    b = make_container(net)
    out = b.exec("ping", "-c1", "-W2", str(a.ip(net)), check=False, timeout=15)
    assert not out.ok, "enable_icc=false: containers of the network still talk"
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "icc"), "published port broken"
    outside.serve("http", 8000, "outside")
    assert eventually(lambda: fetch(b, f"http://{outside.addr}:8000/"), "outside"), "outbound broken"


def test_invalid_value_of_a_known_option_is_refused(make_network, subnets):
    out = make_network("--subnet", str(subnets.v4()), "-o", "com.docker.network.bridge.enable_icc=maybe",
                       check=False)
    assert not out.ok and "com.docker.network.bridge.enable_icc" in out.output, out.output


def test_unknown_option_is_accepted_and_logged(make_network, make_container, subnets, pynetdrv):
    before = pynetdrv.log_size()
    net = make_network("--subnet", str(subnets.v4()), "-o", "com.example.frobnicate=1")
    assert "com.example.frobnicate" in pynetdrv.log_text(before)
    make_container(net)


def flush_our_chains() -> None:
    prefix = PLUGIN.upper()
    for chain, table in ((f"{prefix}-DNAT", "nat"), (f"{prefix}-FORWARD", "filter")):
        run(["iptables", "-w", "-t", table, "-F", chain])


def test_flushed_firewall_is_repaired_while_pynetdrv_runs(make_network, make_container, subnets, outside,
                                                          pynetdrv):
    """An administrator's `iptables -F` (or a firewall manager's reload): pynetdrv's periodic
    check (every FIREWALL_CHECK_SECONDS for the test daemon, 30 s by default) puts it back."""
    net = make_network("--subnet", str(subnets.v4()))
    port = host_port()
    web(make_container, net, "repaired", f"{port}:80")
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "repaired")
    before = pynetdrv.log_size()
    flush_our_chains()
    assert eventually(
        lambda: outside.ask("http", outside.host_addr, port), "repaired", tries=8 * FIREWALL_CHECK_SECONDS
    )
    assert "firewall differs" in pynetdrv.log_text(before), "repaired, but not by the periodic check"


def test_firewall_is_rebuilt_at_start(make_network, make_container, subnets, outside, pynetdrv):
    """A reboot or a flush while pynetdrv is down: its start rebuilds every rule from the state."""
    net = make_network("--subnet", str(subnets.v4()))
    port = host_port()
    web(make_container, net, "rebuilt", f"{port}:80")
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "rebuilt")
    pynetdrv.stop(signal.SIGTERM)
    flush_our_chains()
    assert outside.ask("http", outside.host_addr, port) is None, "the flush did not cut the port"
    pynetdrv.start()
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "rebuilt"), "not rebuilt at start"


def test_publish_all_ports_and_find_them_in_status(make_network, make_container, subnets, outside, pynetdrv):
    """-P: pynetdrv chooses the host port. Docker cannot show it for a remote driver
    (`docker port` is empty), so `pynetdrv status` is where users find it."""
    net = make_network("--subnet", str(subnets.v4()))
    cmd = ["sh", "-c", "mkdir -p /www && echo all-ports > /www/index.html && exec httpd -f -p 80 -h /www"]
    c = make_container(net, "-P", "--expose", "80", cmd=cmd)
    status = run([sys.executable, "-m", "pynetdrv", "status", "--state", str(pynetdrv.state_path)])
    (line,) = [line for line in status.splitlines() if f" {c.ip(net)}:80 " in f" {line} "]
    port = int(line.split()[0].rsplit(":", 1)[1].split("/")[0])
    assert eventually(lambda: outside.ask("http", outside.host_addr, port), "all-ports")
