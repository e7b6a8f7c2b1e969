"""Containers on pynetdrv networks: addressing, routes, reachability, connect/disconnect."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from integration.cmd import wait_for
from integration.docker_objects import docker, ping
from integration.host import link_addresses, link_exists, link_master, pynetdrv_links, veth_name_for


def _gwbridge_ifindex() -> int | None:
    try:
        return int(Path("/sys/class/net/docker_gwbridge/ifindex").read_text())
    except FileNotFoundError:
        return None


def test_two_containers_ping_each_other_and_gateway(make_network, make_container, subnets):
    # A docker_gwbridge link may be on the machine already (left by some other engine's swarm
    # or overlay use): what matters is that this engine neither makes one nor re-creates it.
    gwbridge_before = _gwbridge_ifindex()
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    c1, c2 = make_container(net), make_container(net)
    ip1, ip2 = c1.ip(net), c2.ip(net)
    assert ip1 in sub and ip2 in sub and ip1 != ip2 and gw not in (ip1, ip2)

    ping(c1, ip2)
    ping(c2, ip1)
    ping(c1, gw)
    ping(c2, gw)

    routes = c1.exec("ip", "route").splitlines()
    assert any(r.split()[:5] == ["default", "via", str(gw), "dev", "eth0"] for r in routes), routes
    assert c1.ifaces() == {"lo", "eth0"}, "expected only lo and eth0 (no eth1 / gwbridge leg)"
    assert c1.net(net)["Gateway"] == str(gw)
    assert _gwbridge_ifindex() == gwbridge_before, "a docker_gwbridge link was created"
    assert "docker_gwbridge" not in docker("network", "ls", "--format", "{{.Name}}").split(), \
        "the engine made a docker_gwbridge network"


def test_static_ip_and_duplicate_refused(make_network, make_container, subnets):
    sub = subnets.v4()
    net = make_network("--subnet", str(sub))
    gw = next(sub.hosts())
    static = sub.network_address + 50

    c1 = make_container(net, "--ip", str(static))
    assert c1.ip(net) == static

    dup = make_container(net, "--ip", str(static), check=False)
    assert dup.result is not None and dup.result.rc != 0, "a second container got the same --ip"
    assert not dup.running()

    outside = ipaddress.ip_network(f"{sub.network_address + 256}/24").network_address + 5
    stray = make_container(net, "--ip", str(outside), check=False)
    assert stray.result is not None and stray.result.rc != 0, f"--ip {outside} outside {sub} was accepted"

    assert c1.running() and c1.ip(net) == static
    ping(c1, gw)
    c3 = make_container(net)
    assert c3.ip(net) not in (static, gw)
    ping(c3, static)


def test_dual_stack(make_network, make_container, subnets):
    v4, v6 = subnets.pair()
    net = make_network("--ipv6", "--subnet", str(v4), "--subnet", str(v6))
    cfgs = {c["Subnet"]: c for c in net.ipam_configs()}
    assert set(cfgs) == {str(v4), str(v6)}

    c1, c2 = make_container(net), make_container(net)
    for c in (c1, c2):
        assert c.ip(net) in v4
        assert c.ip6(net) in v6
    assert c1.ip6(net) != c2.ip6(net)
    assert c1.net(net)["GlobalIPv6PrefixLen"] == 64

    ping(c1, c2.ip(net))
    # IPv6 needs duplicate address detection to finish first: bounded retry.
    ping(c1, c2.ip6(net), v6=True, within=10)
    ping(c2, c1.ip6(net), v6=True, within=10)
    # Docker's inspect shows only a gateway the user gave; pynetdrv's default
    # is the first address after the subnet-router anycast (::1).
    gw6 = str(v6.network_address + 1)
    ping(c1, gw6, v6=True, within=10)
    assert ipaddress.ip_interface(f"{gw6}/64") in link_addresses(net.bridge)
    routes6 = c1.exec("ip", "-6", "route").splitlines()
    assert any(r.split()[:3] == ["default", "via", gw6] for r in routes6), routes6


def test_connect_and_disconnect_running_container(make_network, make_container, subnets):
    sub_a, sub_b = subnets.v4(), subnets.v4()
    a = make_network("--subnet", str(sub_a))
    b = make_network("--subnet", str(sub_b))
    c = make_container(a)
    other = make_container(b)
    assert c.ifaces() == {"lo", "eth0"}

    docker("network", "connect", b.name, c.name)
    assert c.ifaces() == {"lo", "eth0", "eth1"}
    ip_b = c.ip(b)
    assert ip_b in sub_b
    ep = c.net(b)["EndpointID"]
    veth = veth_name_for(ep)
    assert link_exists(veth), f"host veth {veth} missing after connect; {pynetdrv_links()}"
    assert link_master(veth) == b.bridge
    ping(c, next(sub_b.hosts()))
    ping(c, other.ip(b))
    ping(other, ip_b)

    docker("network", "disconnect", b.name, c.name)
    assert c.ifaces() == {"lo", "eth0"}
    assert b.name not in c.networks()
    wait_for(lambda: not link_exists(veth), 5, f"host veth {veth} to go after disconnect")
    ping(c, next(sub_a.hosts()))
    ping(other, next(sub_b.hosts()))
    # Its address is free again: a static request for it succeeds.
    again = make_container(b, "--ip", str(ip_b))
    assert again.ip(b) == ip_b
