"""owned_links, link_in_use, host_routes, and a golden dump of a small setup."""

from __future__ import annotations

import pytest
from netns_util import add_foreign_veth, get_link
from pyroute2 import AsyncIPRoute

from pynetdrv.dataplane.base import (
    BridgeSpec,
    ForeignLinkError,
    OwnedLink,
    VethSpec,
    owner_alias,
)
from pynetdrv.dataplane.netlink import NetlinkDataplane

NET = "c0ffee" + "0" * 58
EP1 = "1" * 64
EP2 = "2" * 64
BRIDGE = BridgeSpec(
    name="pndbr0",
    network_id=NET,
    mac="02:42:0a:fb:00:01",
    mtu=1450,
    addresses=("10.251.0.1/24", "fd00:251::1/64"),
)
VETH1 = VethSpec(
    host_name="pndv1h",
    peer_name="pndv1p",
    bridge="pndbr0",
    endpoint_id=EP1,
    mac="02:42:0a:fb:00:02",
    mtu=1450,
)
VETH2 = VethSpec(
    host_name="pndv2h",
    peer_name="pndv2p",
    bridge="pndbr0",
    endpoint_id=EP2,
    mac="02:42:0a:fb:00:03",
    mtu=1450,
)


async def build(dataplane: NetlinkDataplane) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH1)
    await dataplane.ensure_veth(VETH2)


async def test_owned_links_lists_exactly_ours(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await build(dataplane)
    await add_foreign_veth(kernel, "foreign0", "foreign0p")
    # An alias that looks like ours but does not parse is not ours.
    idx = (await kernel.link_lookup(ifname="foreign0"))[0]
    await kernel.link("set", index=idx, ifalias="pynetdrv:router:x")

    owned = sorted(await dataplane.owned_links(), key=lambda o: o.name)
    # With the state reconcile compares, read in the same dump: host ends
    # enslaved (master by name), up, hairpin on; peers down, no master.
    host = {"master": "pndbr0", "up": True, "mtu": 1450, "hairpin": True}
    peer = {"master": None, "up": False, "mtu": 1450, "hairpin": False}
    assert owned == [
        OwnedLink("pndbr0", "bridge", NET, master=None, up=True, mtu=1450, hairpin=False),
        OwnedLink("pndv1h", "veth", EP1, **host),  # type: ignore[arg-type]
        OwnedLink("pndv1p", "veth", EP1, **peer),  # type: ignore[arg-type]
        OwnedLink("pndv2h", "veth", EP2, **host),  # type: ignore[arg-type]
        OwnedLink("pndv2p", "veth", EP2, **peer),  # type: ignore[arg-type]
    ]


async def test_owned_links_empty_namespace(dataplane: NetlinkDataplane) -> None:
    assert await dataplane.owned_links() == []


async def test_link_in_use(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await add_foreign_veth(kernel, "foreign0", "foreign0p")
    assert await dataplane.link_in_use("foreign0") is True
    assert await dataplane.link_in_use("lo") is True
    assert await dataplane.link_in_use("pndbr0") is False  # ours
    assert await dataplane.link_in_use("nosuchlink") is False


async def test_host_routes(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    idx = await add_foreign_veth(kernel, "uplink0", "uplink0p")
    peer = (await kernel.link_lookup(ifname="uplink0p"))[0]
    for i in (idx, peer):
        await kernel.link("set", index=i, state="up")  # carrier: fe80:: routes appear too
    await kernel.addr("add", index=idx, address="10.252.3.1", prefixlen=24)
    await kernel.addr("add", index=idx, address="fd00:252::1", prefixlen=64, flags=0x02)
    await kernel.route("add", dst="0.0.0.0/0", gateway="10.252.3.254")
    await kernel.route("add", dst="::/0", gateway="fd00:252::fe")
    await kernel.route("add", dst="10.99.0.0/16", gateway="10.252.3.253")

    # Connected and static routes; not the defaults, not fe80::/64, not the
    # local table's host routes (10.252.3.1/32 and the like).
    assert sorted(await dataplane.host_routes()) == [
        "10.252.3.0/24",
        "10.99.0.0/16",
        "fd00:252::/64",
    ]


async def test_golden_dump(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await build(dataplane)
    links = [link async for link in await kernel.link("dump")]
    names = {link["index"]: link.get("ifname") for link in links}
    dump = sorted(
        (
            link.get("ifname"),
            link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
            names.get(link.get("master")),
            link.get("mtu"),
            link.get("ifalias"),
        )
        for link in links
    )
    assert dump == [
        ("lo", None, None, 65536, None),
        ("pndbr0", "bridge", None, 1450, f"pynetdrv:bridge:{NET}"),
        ("pndv1h", "veth", "pndbr0", 1450, owner_alias("veth", EP1)),
        ("pndv1p", "veth", None, 1450, owner_alias("veth", EP1)),
        ("pndv2h", "veth", "pndbr0", 1450, owner_alias("veth", EP2)),
        ("pndv2p", "veth", None, 1450, owner_alias("veth", EP2)),
    ]


async def test_another_instances_links_are_foreign(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute, nsname: str
) -> None:
    other = NetlinkDataplane(netns=nsname, instance="pynetdrv-it")
    try:
        await other.ensure_bridge(BRIDGE)
        assert await dataplane.owned_links() == []
        assert await dataplane.link_in_use("pndbr0") is True
        with pytest.raises(ForeignLinkError, match="pndbr0"):
            await dataplane.ensure_bridge(BRIDGE)
        await dataplane.remove_bridge("pndbr0", NET)
        assert [(o.name, o.kind, o.object_id) for o in await other.owned_links()] == [("pndbr0", "bridge", NET)]
        assert (await get_link(kernel, "pndbr0")).get("ifalias") == f"pynetdrv-it:bridge:{NET}"
    finally:
        await other.close()
