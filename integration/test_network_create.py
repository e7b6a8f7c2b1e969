"""docker network create/rm with pynetdrv as network and IPAM driver: options, bridge, errors."""

from __future__ import annotations

import ipaddress
import re
import secrets

import pytest

from integration.cmd import Out, wait_for
from integration.constants import ALIAS_PREFIX, PLUGIN
from integration.docker_objects import Network, docker, ping, unique
from integration.host import (
    bridge_name_for,
    host_routes,
    link_addresses,
    link_alias,
    link_exists,
    link_master,
    link_mtu,
    pynetdrv_links,
    veth_name_for,
)


def test_create_with_range_gateway_aux_and_mtu(make_network, make_container, subnets):
    sub = subnets.v4()
    hosts = list(sub.hosts())
    ip_range = ipaddress.ip_network(f"{sub.network_address + 128}/25")
    gateway = hosts[0]
    aux = {"host1": str(sub.network_address + 128), "host2": str(sub.network_address + 129)}
    net = make_network(
        "--subnet", str(sub), "--ip-range", str(ip_range), "--gateway", str(gateway),
        "--aux-address", f"host1={aux['host1']}", "--aux-address", f"host2={aux['host2']}",
        "-o", "com.docker.network.driver.mtu=1400",
    )

    info = net.inspect()
    assert info["Driver"] == PLUGIN
    assert info["IPAM"]["Driver"] == PLUGIN
    [cfg] = info["IPAM"]["Config"]
    assert cfg["Subnet"] == str(sub)
    assert cfg["IPRange"] == str(ip_range)
    assert cfg["Gateway"] == str(gateway)
    assert cfg["AuxiliaryAddresses"] == aux
    assert info["Options"].get("com.docker.network.driver.mtu") == "1400"

    # The bridge: our name, our alias, the gateway address, MTU 1400.
    assert link_exists(net.bridge), f"bridge {net.bridge} missing; pynetdrv links: {pynetdrv_links()}"
    assert link_alias(net.bridge) == f"{ALIAS_PREFIX}bridge:{net.id}"
    assert ipaddress.ip_interface(f"{gateway}/{sub.prefixlen}") in link_addresses(net.bridge)
    assert link_mtu(net.bridge) == 1400

    # Containers: inside the ip-range, never an aux address, MTU 1400 in and outside.
    containers = [make_container(net) for _ in range(3)]
    seen = set()
    for c in containers:
        ip = c.ip(net)
        assert ip in ip_range, f"{c.name} got {ip}, outside --ip-range {ip_range}"
        assert str(ip) not in aux.values(), f"{c.name} got the aux address {ip}"
        assert ip != gateway
        assert ip not in seen
        seen.add(ip)
        assert c.net(net)["IPPrefixLen"] == sub.prefixlen
        assert c.net(net)["Gateway"] == str(gateway)
        assert c.exec("cat", "/sys/class/net/eth0/mtu") == "1400"
        veth = veth_name_for(c.net(net)["EndpointID"])
        assert link_exists(veth), f"host veth {veth} missing; pynetdrv links: {pynetdrv_links()}"
        assert link_alias(veth) == f"{ALIAS_PREFIX}veth:{c.net(net)['EndpointID']}", link_alias(veth)
        assert link_mtu(veth) == 1400
        assert link_master(veth) == net.bridge
    assert link_mtu(net.bridge) == 1400
    ping(containers[0], containers[1].ip(net))

    # Removing everything removes the bridge and the veths.
    veths = [veth_name_for(c.net(net)["EndpointID"]) for c in containers]
    docker("rm", "-f", *[c.name for c in containers])
    wait_for(lambda: not any(link_exists(v) for v in veths), 5, f"veths {veths} to go")
    docker("network", "rm", net.name)
    assert not link_exists(net.bridge), f"bridge {net.bridge} still there after network rm"


def test_custom_bridge_name(make_network, make_container, subnets):
    sub = subnets.v4()
    name = f"pnit-br{secrets.token_hex(3)}"  # 13 chars, under IFNAMSIZ
    net = make_network("--subnet", str(sub), "-o", f"com.docker.network.bridge.name={name}")
    assert net.bridge == name
    assert link_exists(name), f"bridge {name} missing; pynetdrv links: {pynetdrv_links()}"
    assert link_alias(name) == f"{ALIAS_PREFIX}bridge:{net.id}"
    assert not link_exists(bridge_name_for(net.id)), "default-named bridge created as well"
    c = make_container(net)
    ping(c, next(sub.hosts()))
    docker("rm", "-f", c.name)
    docker("network", "rm", net.name)
    assert not link_exists(name)


@pytest.mark.parametrize("opt, needle", [
    ("com.docker.network.bridge.enable_ip_masquerade=nope", "enable_ip_masquerade"),
    ("com.docker.network.driver.mtu=lots", "mtu"),
], ids=["bad-masquerade", "bad-mtu"])
def test_bad_option_is_refused_with_its_name(make_network, subnets, opt, needle):
    sub = subnets.v4()
    name = unique("bad")
    out = make_network("--subnet", str(sub), "-o", opt, name=name, check=False)
    assert isinstance(out, Out) and out.rc != 0, f"network create with -o {opt} succeeded"
    assert needle in out.output.lower(), f"the error does not name {needle!r}: {out.output}"
    assert not docker("network", "inspect", name, check=False).ok
    # The refused create released its pool: the same subnet works right after.
    make_network("--subnet", str(sub))


def test_overlapping_subnet_is_refused(make_network, subnets):
    sub = subnets.v4()
    first = make_network("--subnet", str(sub))
    half = next(sub.subnets(new_prefix=25))
    for candidate in (sub, half):
        name = unique("ovl")
        out = make_network("--subnet", str(candidate), name=name, check=False)
        assert isinstance(out, Out) and out.rc != 0, f"overlapping {candidate} was accepted"
        msg = out.output
        assert re.search(r"overlap", msg, re.IGNORECASE) or str(sub) in msg, (
            f"the error for {candidate} names neither the overlap nor {sub}: {msg}")
        assert not docker("network", "inspect", name, check=False).ok
    # Once the first network is gone its pool is free again.
    docker("network", "rm", first.name)
    make_network("--subnet", str(half))


def _subnets_of(net: Network) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c["Subnet"]) for c in net.ipam_configs()]


def test_automatic_pools_do_not_overlap(make_network, make_container, subnets):
    n1 = make_network()
    n2 = make_network()
    [s1] = _subnets_of(n1)
    [s2] = _subnets_of(n2)
    subnets.note(str(s1))
    subnets.note(str(s2))
    assert s1 != s2 and not s1.overlaps(s2), f"automatic pools overlap: {s1} {s2}"
    ours = {n1.bridge, n2.bridge}
    for net, dev in host_routes():
        if dev not in ours:
            assert not net.overlaps(s1) and not net.overlaps(s2), (
                f"automatic pool overlaps the host route {net} dev {dev}: {s1} {s2}")
    c = make_container(n1)
    assert c.ip(n1) in s1
    gw = ipaddress.ip_address(n1.ipam_configs()[0]["Gateway"])
    assert gw in s1
    ping(c, gw)
