"""Real traffic through the rendered rules (see topology.py): outbound NAT,
published TCP and UDP ports from outside, from the host and by hairpin,
isolation between networks, enable_icc=false and --internal.  Every target
is an address inside the test's own namespaces."""

from __future__ import annotations

from netns_util import in_netns, ping
from topology import HOST_OUTSIDE, HOST_OUTSIDE6, OUTSIDE, OUTSIDE6, Topology

from pynetdrv.firewall.model import FirewallState, NetworkRules, PortRule

A, B = "a" * 64, "b" * 64


async def two_networks(topo: Topology, a: NetworkRules, b: NetworkRules) -> None:
    await topo.network(a.bridge, A, "10.251.0.1")
    await topo.network(b.bridge, B, "10.251.1.1")
    await topo.container("a1", a.bridge, "10.251.0.2", "10.251.0.1")
    await topo.container("a2", a.bridge, "10.251.0.3", "10.251.0.1")
    await topo.container("b1", b.bridge, "10.251.1.2", "10.251.1.1")
    await topo.container("b2", b.bridge, "10.251.1.3", "10.251.1.1")


async def test_outbound_is_masqueraded_unless_disabled(topology: Topology) -> None:
    a = NetworkRules("pndbr0", ("10.251.0.0/24",))
    b = NetworkRules("pndbr1", ("10.251.1.0/24",), masquerade=False)
    await two_networks(topology, a, b)
    await topology.firewall().apply(FirewallState(networks=(a, b)))
    topology.serve(topology.outside, "tcp", 7000, "outside")
    a1, b1 = topology.containers["a1"], topology.containers["b1"]
    assert topology.ask(a1.ns, "tcp", OUTSIDE, 7000) == f"outside {HOST_OUTSIDE}", "source NATed to the host"
    # Without masquerade the outside host sees the container's own address,
    # so it answers only once it has a route back.
    assert topology.ask(b1.ns, "tcp", OUTSIDE, 7000) is None
    assert in_netns(topology.outside, "ip", "route", "add", "10.251.1.0/24", "via", HOST_OUTSIDE).returncode == 0
    assert topology.ask(b1.ns, "tcp", OUTSIDE, 7000) == f"outside {b1.ip}"


async def test_published_ports_reach_the_container(topology: Topology) -> None:
    net = NetworkRules("pndbr0", ("10.251.0.0/24",))
    await topology.network("pndbr0", A, "10.251.0.1")
    c1 = await topology.container("c1", "pndbr0", "10.251.0.2", "10.251.0.1")
    c2 = await topology.container("c2", "pndbr0", "10.251.0.3", "10.251.0.1")
    ports = (PortRule("tcp", "0.0.0.0", 8080, c1.ip, 80, "pndbr0"),
             PortRule("udp", "0.0.0.0", 5353, c1.ip, 53, "pndbr0"),
             PortRule("tcp", "127.0.0.1", 8081, c1.ip, 81, "pndbr0"))
    await topology.firewall().apply(FirewallState(networks=(net,), ports=ports))
    for proto, port in (("tcp", 80), ("udp", 53), ("tcp", 81)):
        topology.serve(c1.ns, proto, port, f"c1-{proto}-{port}")

    # From another host: the client's address is kept (no proxy, no SNAT).
    assert topology.ask(topology.outside, "tcp", HOST_OUTSIDE, 8080) == f"c1-tcp-80 {OUTSIDE}"
    assert topology.ask(topology.outside, "udp", HOST_OUTSIDE, 5353) == f"c1-udp-53 {OUTSIDE}"
    # From the host, by its own address and by loopback.
    assert (topology.ask(topology.host, "tcp", HOST_OUTSIDE, 8080) or "").startswith("c1-tcp-80 ")
    assert (topology.ask(topology.host, "tcp", "127.0.0.1", 8080) or "").startswith("c1-tcp-80 ")
    # Hairpin: a container of the same network, and the container itself.
    assert (topology.ask(c2.ns, "tcp", HOST_OUTSIDE, 8080) or "").startswith("c1-tcp-80 ")
    assert (topology.ask(c2.ns, "tcp", "10.251.0.1", 8080) or "").startswith("c1-tcp-80 ")
    assert (topology.ask(c1.ns, "tcp", HOST_OUTSIDE, 8080) or "").startswith("c1-tcp-80 ")
    # Bound to 127.0.0.1 only: the host reaches it, the outside does not.
    assert (topology.ask(topology.host, "tcp", "127.0.0.1", 8081) or "").startswith("c1-tcp-81 ")
    assert topology.ask(topology.outside, "tcp", HOST_OUTSIDE, 8081) is None
    # Only published ports: the container's own address is not reachable from outside.
    assert in_netns(topology.outside, "ip", "route", "add", "10.251.0.0/24", "via", HOST_OUTSIDE).returncode == 0
    assert topology.ask(topology.outside, "tcp", c1.ip, 80) is None


async def test_networks_are_isolated_and_icc_false_separates_containers(topology: Topology) -> None:
    # FORWARD ACCEPT: it is our own rules that isolate, not Docker's policy.
    assert in_netns(topology.host, f"iptables-{topology.variant}", "-w", "-P", "FORWARD", "ACCEPT").returncode == 0
    a = NetworkRules("pndbr0", ("10.251.0.0/24",))
    b = NetworkRules("pndbr1", ("10.251.1.0/24",), icc=False)
    await two_networks(topology, a, b)
    b1 = topology.containers["b1"]
    ports = (PortRule("tcp", "0.0.0.0", 8080, b1.ip, 80, "pndbr1"),)
    await topology.firewall().apply(FirewallState(networks=(a, b), ports=ports))
    c = topology.containers
    assert ping(c["a1"].ns, c["a2"].ip), "same network, icc on"
    assert not ping(c["a1"].ns, c["b1"].ip), "network a must not reach network b"
    assert not ping(c["b1"].ns, c["a1"].ip), "network b must not reach network a"
    assert not ping(c["b1"].ns, c["b2"].ip), "enable_icc=false: no traffic inside the network"
    assert ping(c["b1"].ns, "10.251.1.1"), "the gateway still answers"
    topology.serve(b1.ns, "tcp", 80, "b1")
    assert topology.ask(topology.outside, "tcp", HOST_OUTSIDE, 8080) == f"b1 {OUTSIDE}", "published port still works"


async def test_internal_network_talks_only_inside(topology: Topology) -> None:
    net = NetworkRules("pndbr0", ("10.251.0.0/24",), internal=True)
    await topology.network("pndbr0", A, "10.251.0.1")
    c1 = await topology.container("c1", "pndbr0", "10.251.0.2", "10.251.0.1")
    c2 = await topology.container("c2", "pndbr0", "10.251.0.3", "10.251.0.1")
    await topology.firewall().apply(FirewallState(networks=(net,)))
    assert ping(c1.ns, c2.ip)
    assert not ping(c1.ns, OUTSIDE), "internal: nothing leaves"
    assert in_netns(topology.outside, "ip", "route", "add", "10.251.0.0/24", "via", HOST_OUTSIDE).returncode == 0
    assert not ping(topology.outside, c1.ip), "internal: nothing comes in"


async def test_ipv6_is_routed_without_nat(topology: Topology) -> None:
    net = NetworkRules("pndbr0", ("10.251.0.0/24", "fd00:251::/64"))
    await topology.network("pndbr0", A, "10.251.0.1", gateway6="fd00:251::1")
    c1 = await topology.container("c1", "pndbr0", "10.251.0.2", "10.251.0.1", ip6=("fd00:251::2", "fd00:251::1"))
    await topology.firewall().apply(FirewallState(networks=(net,)))
    # No NAT for IPv6: the outside host answers only once it has a route back.
    assert not ping(c1.ns, OUTSIDE6)
    assert in_netns(topology.outside, "ip", "-6", "route", "add", "fd00:251::/64", "via", HOST_OUTSIDE6).returncode == 0
    # the route back is new: neighbour discovery on both hops may take a moment on a loaded machine
    assert any(ping(c1.ns, OUTSIDE6) for _ in range(3)), "routed IPv6 outbound"
    assert not ping(topology.outside, "fd00:251::2"), "nothing comes in unasked, IPv6 included"
