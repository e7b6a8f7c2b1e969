"""Real traffic: two "containers" (namespaces holding the veth peers) talk
across our bridge, with Docker's FORWARD DROP policy in force, and the
gateway address answers.  Only addresses inside the test namespaces are
pinged."""

from __future__ import annotations

from contextlib import ExitStack

from netns_util import in_netns, ping, throwaway_netns
from pyroute2 import AsyncIPRoute

from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.firewall.iptables import IptablesFirewall
from pynetdrv.firewall.model import FirewallState, NetworkRules

NET = "7" * 64
BRIDGE = BridgeSpec(
    name="pndbr0",
    network_id=NET,
    mac="02:42:0a:fb:00:01",
    mtu=1500,
    addresses=("10.251.0.1/24", "fd00:251::1/64"),
)
CONTAINERS = {  # veth index -> (IPv4, IPv6, MAC)
    1: ("10.251.0.2", "fd00:251::2", "02:42:0a:fb:00:02"),
    2: ("10.251.0.3", "fd00:251::3", "02:42:0a:fb:00:03"),
}


def veth(n: int) -> VethSpec:
    return VethSpec(
        host_name=f"pndv{n}h",
        peer_name=f"pndv{n}p",
        bridge="pndbr0",
        endpoint_id=str(n) * 64,
        mac=CONTAINERS[n][2],
        mtu=1500,
    )


async def plug_container(kernel: AsyncIPRoute, peer: str, container_ns: str, n: int) -> None:
    """What Docker does with the peer: move it into the container's
    namespace, address it and bring it up there."""
    idx = (await kernel.link_lookup(ifname=peer))[0]
    await kernel.link("set", index=idx, net_ns_fd=container_ns)
    ipr = AsyncIPRoute(netns=container_ns)
    try:
        idx = (await ipr.link_lookup(ifname=peer))[0]
        v4, v6, _ = CONTAINERS[n]
        await ipr.addr("add", index=idx, address=v4, prefixlen=24)
        await ipr.addr("add", index=idx, address=v6, prefixlen=64, flags=0x02)  # NODAD
        await ipr.link("set", index=idx, state="up")
    finally:
        ipr.close()


def br_netfilter_active(nsname: str, tool: str) -> bool:
    """Whether bridged frames go through ``tool``'s FORWARD chain here."""
    done = in_netns(nsname, "cat", f"/proc/sys/net/bridge/bridge-nf-call-{tool}")
    return done.returncode == 0 and done.stdout.strip() == "1"


async def test_containers_talk_across_the_bridge(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute, nsname: str
) -> None:
    # Docker's FORWARD policy: without our rule, bridged frames are dropped.
    for tool in ("iptables", "ip6tables"):
        assert in_netns(nsname, tool, "-w", "-P", "FORWARD", "DROP").returncode == 0
    await dataplane.ensure_bridge(BRIDGE)
    firewall = IptablesFirewall(netns=nsname)
    state = FirewallState(networks=(NetworkRules("pndbr0", ("10.251.0.0/24", "fd00:251::/64")),))
    await firewall.apply(state)
    with ExitStack() as stack:
        ns1, ns2 = (stack.enter_context(throwaway_netns()) for _ in range(2))
        for n, container_ns in ((1, ns1), (2, ns2)):
            await dataplane.ensure_veth(veth(n))
            await plug_container(kernel, veth(n).peer_name, container_ns, n)

        assert ping(ns1, "10.251.0.3"), "container to container, IPv4"
        assert ping(ns2, "fd00:251::2"), "container to container, IPv6"
        assert ping(ns1, "10.251.0.1"), "container to gateway, IPv4"
        assert ping(ns2, "fd00:251::1"), "container to gateway, IPv6"

        # Prove it is our rule that lets bridged traffic through (where
        # br_netfilter is loaded, as Docker does; otherwise nothing to prove).
        await firewall.apply(FirewallState())
        if br_netfilter_active(nsname, "iptables"):
            assert not ping(ns1, "10.251.0.3"), "FORWARD DROP should stop bridged IPv4"
        if br_netfilter_active(nsname, "ip6tables"):
            assert not ping(ns2, "fd00:251::2"), "FORWARD DROP should stop bridged IPv6"
        assert ping(ns1, "10.251.0.1"), "the gateway is INPUT, not FORWARD"
        await firewall.apply(state)
        assert ping(ns1, "10.251.0.3"), "IPv4 rule restored"
        assert ping(ns2, "fd00:251::2"), "IPv6 rule restored"
