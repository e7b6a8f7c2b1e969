"""The fast path (pynetdrv.dataplane.fastpath) on a real kernel, between simulated hosts (``Lab`` of
test_netns_vxlan: host namespaces on an underlay switch, each with a network's bridge and VXLAN
device, containers as namespaces): cross-host unicast is redirected past the bridge (the filters'
own packet counters say so), the gateway and ARP still go through it, and a changed or empty set
rewrites or removes the filters.  Every namespace goes when the test ends, whatever happens."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest_asyncio
from netns_util import in_netns, ping
from test_netns_vxlan import Container, Host, Lab, three_hosts

from pynetdrv.dataplane.vxlan import VxlanNetwork
from pynetdrv.dataplane.vxlan_plan import LocalPort


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    async with AsyncExitStack() as stack:
        yield Lab(stack)


def veth(c: Container) -> str:
    """The host-side name of the container's veth (Lab names the pair pnveN / pnvcN)."""
    return c.ifname.replace("pnvc", "pnve")


def redirected(host: Host, dev: str) -> int:
    """Packets the fast-path filters on ``dev``'s ingress sent on (tc's own counters)."""
    out = in_netns(host.ns, "tc", "-s", "filter", "show", "dev", dev, "ingress").stdout
    return sum(int(m) for m in re.findall(r"Sent \d+ bytes (\d+) pkt", out))


def has_clsact(host: Host, dev: str) -> bool:
    return "clsact" in in_netns(host.ns, "tc", "qdisc", "show", "dev", dev).stdout


async def fast(host: Host, net: VxlanNetwork, here: list[Container], there: list[Container]) -> int:
    return await host.vx.fast_path(net, [LocalPort(veth(c), (c.ip, c.ip6)) for c in here],
                                   [ip for c in there for ip in (c.ip, c.ip6)])


async def test_cross_host_unicast_goes_past_the_bridge_and_the_rest_through_it(lab: Lab) -> None:
    nets, cs = await three_hosts(lab)
    await lab.wire(nets, cs)
    for host, c in zip(lab.hosts, cs, strict=True):
        others = [o for o in cs if o is not c]
        assert await fast(host, nets[host], [c], others) == 2 + 4  # the device: c's 2 addresses; the veth: 2 x 2
        assert await fast(host, nets[host], [c], others) == 0  # nothing to change
    c1, c2, _ = cs
    h1, h2 = c1.host, c2.host
    vx1, vx2 = nets[h1].ifname, nets[h2].ifname
    assert redirected(h1, veth(c1)) == 0 and redirected(h2, vx2) == 0
    for addr in (c2.ip, c2.ip6):
        assert ping(c1.ns, addr), f"{c1.ip} -> {addr} with the fast path"
    assert redirected(h1, veth(c1)) >= 2, "host 1 sent the echo requests past its bridge"
    assert redirected(h2, vx2) >= 2, "host 2 took them past its bridge to the container"
    assert redirected(h2, veth(c2)) >= 2 and redirected(h1, vx1) >= 2, "and the replies back"
    sent = redirected(h1, veth(c1))
    assert ping(c1.ns, "10.77.0.1"), "the gateway is the local bridge's"
    assert redirected(h1, veth(c1)) == sent, "traffic to the gateway is not redirected"


async def test_a_changed_set_is_written_again_and_an_empty_one_removes_every_filter(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    await lab.wire(nets, [c1, c2, c3])
    h1, net = c1.host, nets[c1.host]
    assert await fast(h1, net, [c1], [c2]) == 4
    assert ping(c1.ns, c2.ip) and not ping(c1.ns, "10.77.0.99")
    assert await fast(h1, net, [c1], [c2, c3]) == 2  # c3's two addresses added on the veth, nothing else
    assert ping(c1.ns, c3.ip) and ping(c1.ns, c3.ip6)
    assert await fast(h1, net, [c1], [c3]) == 2  # c2's removed
    assert ping(c1.ns, c2.ip), "c2 through the bridge"
    assert redirected(h1, veth(c1)) >= 2
    assert await fast(h1, net, [], [c2, c3]) == 2 + 2  # no container here: nothing on the device or the veth
    assert not has_clsact(h1, net.ifname) and not has_clsact(h1, veth(c1))
    assert await fast(h1, net, [c1], []) == 2  # only the device's redirects to the container
    assert has_clsact(h1, net.ifname) and not has_clsact(h1, veth(c1))
    assert ping(c1.ns, c2.ip), "through the bridge again"
    await h1.vx.remove_vxlan(net)
    assert await fast(h1, net, [c1], [c2]) == 0  # no device: nothing to do
