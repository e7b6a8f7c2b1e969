"""The core scenarios against pynetdrv as a managed plugin (pynetdrv/pynetdrv-it:latest):
two containers talk, IPAM (--ip, --ip-range, exhaustion), a published port on 127.0.0.1,
and a crash of the plugin's process (dockerd starts it again; containers keep working; the
state is kept). One plugin serves the module; see integration/managed_plugin.py."""

from __future__ import annotations

import os
import re
import signal

from integration.cmd import wait_for
from integration.docker_objects import ping
from integration.managed_plugin import NAME, PLUGINS_RUN
from integration.outside_host import ask_from_host
from integration.processes import pid_gone
from integration.test_external import eventually, host_port, web

MANAGED = {"driver": NAME, "ipam": NAME}


def test_two_containers_talk(managed, make_network, make_container, subnets):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub), **MANAGED)
    c1, c2 = make_container(net), make_container(net)
    ping(c1, c2.ip(net))
    ping(c2, c1.ip(net))
    ping(c1, c2.name)  # Docker's embedded DNS on the plugin's network


def test_ipam_static_address_range_and_exhaustion(managed, make_network, make_container, subnets):
    sub = subnets.v4()
    hosts = list(sub.hosts())
    ip_range = list(sub.subnets(new_prefix=30))[2]  # .8-.11, clear of the gateway
    net = make_network("--subnet", str(sub), "--ip-range", str(ip_range), **MANAGED)
    static = make_container(net, "--ip", str(hosts[199]))
    assert static.ip(net) == hosts[199]
    auto = []
    for _ in range(5):
        c = make_container(net, check=False)
        if c.result is None or not c.result.ok:
            break
        auto.append(c)
    got = [c.ip(net) for c in auto]
    assert len(got) == 4 and all(ip in ip_range for ip in got) and len(set(got)) == 4, got
    msg = c.result.output if c.result is not None else ""
    assert re.search(r"no free address", msg), f"the 5th container in a /30 range: {msg!r}"
    taken = make_container(net, "--ip", str(got[0]), check=False)
    assert taken.result is not None and not taken.result.ok, "a static address in use was handed out again"
    ping(static, got[0])


def test_published_port_on_loopback(managed, make_network, make_container, subnets):
    net = make_network("--subnet", str(subnets.v4()), **MANAGED)
    port = host_port()
    web(make_container, net, "managed-token", f"127.0.0.1:{port}:80")
    assert eventually(lambda: ask_from_host("http", "127.0.0.1", port), "managed-token")


def test_plugin_crash_is_restarted_and_keeps_containers_and_state(managed, make_network, make_container, subnets):
    sub = subnets.v4()
    gw = next(sub.hosts())
    net = make_network("--subnet", str(sub), **MANAGED)
    c1, c2 = make_container(net), make_container(net)
    ip1, ip2 = c1.ip(net), c2.ip(net)
    pids = managed.pids()
    assert len(pids) == 1, f"expected one process of the plugin, found {pids}"
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: pid_gone(pids[0]), 10, "the plugin's process to die")
    ping(c1, ip2)  # the dataplane does not depend on the process

    # dockerd sees the exit and starts the plugin again (no backoff); "Enabled" comes
    # before the socket, so wait for the socket.
    managed.wait_ready(30)
    assert managed.pids() and managed.pids() != pids
    assert (PLUGINS_RUN / managed.id).is_dir()
    c3 = make_container(net)
    ip3 = c3.ip(net)
    assert ip3 in sub and ip3 not in (ip1, ip2, gw), f"after the crash {ip3} was handed out; in use: {ip1} {ip2} {gw}"
    ping(c3, ip1)
    ping(c2, gw)
