"""Restarts: pynetdrv (SIGTERM, SIGKILL) under running containers; dockerd (SIGKILL, SIGTERM)
with a --restart always container; a second pynetdrv on the same state is refused; the
start-up reconcile of the kernel against the state."""

from __future__ import annotations

import ipaddress
import secrets
import signal
import subprocess
import sys
import time

import pytest

from integration.cmd import run, wait_for
from integration.constants import ALIAS_PREFIX, PLUGIN_SOCKET
from integration.docker_objects import ping
from integration.host import link_addresses, link_alias, link_exists, ports_of, veth_name_for
from integration.outside_host import ask_from_host
from integration.pynetdrv_daemon import plugin_activates
from integration.test_external import eventually, host_port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_pynetdrv_restart_keeps_containers_connected(pynetdrv, make_network, make_container, subnets, sig):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    c1, c2 = make_container(net), make_container(net)
    ip1, ip2 = c1.ip(net), c2.ip(net)
    ping(c1, ip2)

    rc = pynetdrv.stop(sig)
    if sig == signal.SIGTERM:
        assert rc == 0, f"pynetdrv exited with {rc} on SIGTERM (expected a clean exit 0)"
        assert not PLUGIN_SOCKET.exists(), "pynetdrv left its socket behind on SIGTERM"
    else:
        assert rc == -signal.SIGKILL
    # The data plane does not depend on the daemon process.
    ping(c1, ip2)

    pynetdrv.start()
    assert link_exists(net.bridge)
    ping(c1, ip2)
    ping(c2, ip1)
    ping(c1, gw)
    assert ports_of(net.bridge) == sorted(veth_name_for(c.net(net)["EndpointID"]) for c in (c1, c2))

    c3 = make_container(net)
    ip3 = c3.ip(net)
    assert ip3 in sub and ip3 not in (ip1, ip2, gw), f"new container got {ip3}; in use: {ip1} {ip2} {gw}"
    ping(c3, ip1)
    ping(c1, ip3)


def test_second_instance_on_same_state_is_refused(pynetdrv, make_network, make_container, subnets, tmp_path):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    c = make_container(net)
    other_sock = tmp_path / "second.sock"
    log = tmp_path / "second.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pynetdrv", "serve", "--socket", str(other_sock),
             "--state", str(pynetdrv.state_path), "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            rc = None
    text = log.read_text(errors="replace")
    assert rc is not None, f"a second pynetdrv on the same state kept running; its log:\n{text}"
    assert rc != 0, f"the second pynetdrv exited with 0; its log:\n{text}"
    assert not plugin_activates(other_sock)
    assert pynetdrv.running() and plugin_activates(pynetdrv.socket_path)
    assert link_exists(net.bridge)
    ping(c, next(sub.hosts()))
    c2 = make_container(net)
    ping(c2, c.ip(net))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_dockerd_restart_with_restart_always_container(pynetdrv, dockerd, make_network, make_container,
                                                        subnets, sig):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    port = host_port()
    web = ["sh", "-c", "mkdir -p /www && echo restarted > /www/index.html && exec httpd -f -p 80 -h /www"]
    c1 = make_container(net, "--restart", "always", "-p", f"{port}:80", cmd=web)
    ping(c1, gw)
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "restarted")
    daemon_pid = pynetdrv.pid

    started = time.monotonic()
    dockerd(sig)

    def back() -> bool:
        state = c1.inspect()["State"]
        nets = c1.networks()
        return bool(state["Running"] and nets.get(net.name, {}).get("IPAddress"))

    wait_for(back, 60, f"{c1.name} (--restart always) to run again with an address")
    ip1 = c1.ip(net)
    assert ip1 in sub and ip1 != gw
    assert pynetdrv.running() and pynetdrv.pid == daemon_pid, "pynetdrv did not survive the dockerd restart"
    ping(c1, gw, within=10)
    # Its published port came back with it (released with the old endpoint, taken again).
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "restarted"), "published port lost"

    c2 = make_container(net)
    ip2 = c2.ip(net)
    assert ip2 in sub and ip2 not in (ip1, gw)
    ping(c1, ip2)
    ping(c2, ip1)
    # Only the two live endpoints have a veth on the bridge (the pre-restart one is gone).
    wait_for(lambda: len(ports_of(net.bridge)) == 2, 10,
               f"exactly 2 veths on {net.bridge} (have {ports_of(net.bridge)})")
    assert time.monotonic() - started < 150


def test_restart_reconciles_kernel_with_state(pynetdrv, make_network, make_container, subnets):
    """While pynetdrv is down its bridge vanishes (as after a reboot) and a link with its alias
    that its state does not know appears: on start it recreates the one, removes the other."""
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    c1, c2 = make_container(net), make_container(net)
    ping(c1, c2.ip(net))
    stray = f"pnbr-it{secrets.token_hex(3)}"
    try:
        pynetdrv.stop(signal.SIGKILL)
        run(["ip", "link", "del", net.bridge])
        run(["ip", "link", "add", stray, "type", "bridge"])
        run(["ip", "link", "set", stray, "alias", f"{ALIAS_PREFIX}bridge:{'f' * 64}"])
        pynetdrv.start()
        assert not link_exists(stray), f"{stray} (our alias, unknown to the state) survived the start"
    finally:
        if link_exists(stray):
            run(["ip", "link", "del", stray], check=False)
    assert link_exists(net.bridge), f"bridge {net.bridge} of a stored network was not recreated"
    assert link_alias(net.bridge) == f"{ALIAS_PREFIX}bridge:{net.id}"
    assert ipaddress.ip_interface(f"{gw}/{sub.prefixlen}") in link_addresses(net.bridge)
    assert ports_of(net.bridge) == sorted(veth_name_for(c.net(net)["EndpointID"]) for c in (c1, c2))
    ping(c1, gw)
    ping(c1, c2.ip(net))
    ping(c2, c1.ip(net))
