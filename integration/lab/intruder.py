"""A machine on the underlay that is not a cluster member: netns pnlab-x on the lab's switch with
192.168.77.99, and a VXLAN device speaking a cluster network's VNI towards one host. It sends
frames to a container as if it were a member; the cluster must drop them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from integration.lab.topology import PREFIX, SWITCH_NS, UNDERLAY, UNDERLAY_LEN, HostSpec, in_ns, netns_exists, run

NETNS = f"{PREFIX}-x"          # a pnlab-* namespace: `lab down` removes it too
SWITCH_PORT = f"{PREFIX}x"
ADDRESS = f"{UNDERLAY}.99"


@contextmanager
def intruder(target: HostSpec, vni: int, port: int, overlay_address: str) -> Iterator[str]:
    """Yields the netns, whose `vx0` (VNI `vni`, to target:port) holds `overlay_address`."""
    try:
        if netns_exists(NETNS):
            run("ip", "netns", "del", NETNS)
        run("ip", "netns", "add", NETNS)
        in_ns(SWITCH_NS, "ip", "link", "add", SWITCH_PORT, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
        in_ns(SWITCH_NS, "ip", "link", "set", SWITCH_PORT, "master", "br0", "up")
        in_ns(NETNS, "ip", "addr", "add", f"{ADDRESS}/{UNDERLAY_LEN}", "dev", "eth0")
        in_ns(NETNS, "ip", "link", "set", "eth0", "up")
        in_ns(NETNS, "ip", "link", "set", "lo", "up")
        in_ns(NETNS, "ip", "link", "add", "vx0", "type", "vxlan", "id", str(vni), "remote", target.address,
              "dstport", str(port), "dev", "eth0")
        in_ns(NETNS, "ip", "addr", "add", overlay_address, "dev", "vx0")
        in_ns(NETNS, "ip", "link", "set", "vx0", "up")
        yield NETNS
    finally:
        run("ip", "netns", "del", NETNS, check=False)  # its links go with it
