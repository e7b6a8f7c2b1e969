"""ensure_veth / remove_veth against the kernel, read back over netlink."""

from __future__ import annotations

import dataclasses

import pytest
from netns_util import IFF_UP, add_foreign_veth, get_link, link_names
from pyroute2 import AsyncIPRoute

from pynetdrv.dataplane.base import (
    BridgeSpec,
    DataplaneError,
    ForeignLinkError,
    VethSpec,
    owner_alias,
)
from pynetdrv.dataplane.netlink import NetlinkDataplane

NET = "ab" * 32
EP = "e1" * 32
OTHER_EP = "f2" * 32
BRIDGE = BridgeSpec(
    name="pndbr0", network_id=NET, mac="02:42:0a:fb:00:01", mtu=1400, addresses=("10.251.0.1/24",)
)
VETH = VethSpec(
    host_name="pndv1h",
    peer_name="pndv1p",
    bridge="pndbr0",
    endpoint_id=EP,
    mac="02:42:0a:fb:00:02",
    mtu=1400,
)


async def veth_state(ipr: AsyncIPRoute) -> dict[str, object]:
    host = await get_link(ipr, "pndv1h")
    peer = await get_link(ipr, "pndv1p")
    assert host is not None and peer is not None
    return {
        "host": (
            host["index"],
            host.get("ifalias"),
            host.get("master"),
            host.get("mtu"),
            bool(host["flags"] & IFF_UP),
        ),
        "peer": (
            peer["index"],
            peer.get("ifalias"),
            peer.get("mtu"),
            peer.get("address"),
            bool(peer["flags"] & IFF_UP),
        ),
        "kind": {
            host.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
            peer.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        },
    }


async def expected(ipr: AsyncIPRoute) -> dict[str, object]:
    br = (await ipr.link_lookup(ifname="pndbr0"))[0]
    host = (await ipr.link_lookup(ifname="pndv1h"))[0]
    peer = (await ipr.link_lookup(ifname="pndv1p"))[0]
    alias = f"pynetdrv:veth:{EP}"
    return {
        "host": (host, alias, br, 1400, True),
        # Peer stays down: Docker moves it into the container first.
        "peer": (peer, alias, 1400, "02:42:0a:fb:00:02", False),
        "kind": {"veth"},
    }


async def test_veth_created_as_specified(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    assert await veth_state(kernel) == await expected(kernel)


async def test_ensure_veth_is_idempotent_and_repairs_host_end(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    first = await veth_state(kernel)
    await dataplane.ensure_veth(VETH)
    assert await veth_state(kernel) == first

    host = (await kernel.link_lookup(ifname="pndv1h"))[0]
    await kernel.link("set", index=host, master=0, mtu=1300, state="down")
    await dataplane.ensure_veth(VETH)
    assert await veth_state(kernel) == first


async def test_veth_without_mtu_keeps_kernel_default(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(dataclasses.replace(BRIDGE, mtu=None))
    await dataplane.ensure_veth(dataclasses.replace(VETH, mtu=None))
    state = await veth_state(kernel)
    assert state["host"][3] == 1500 and state["peer"][2] == 1500  # type: ignore[index]


async def test_missing_bridge_fails_and_leaves_no_veth(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    before = await link_names(kernel)
    message = r"^enslave pndv1h to bridge nosuchbr: No such device$"
    with pytest.raises(DataplaneError, match=message):
        await dataplane.ensure_veth(dataclasses.replace(VETH, bridge="nosuchbr"))
    assert await link_names(kernel) == before == {"lo"}


async def test_enslave_to_a_link_not_our_bridge_is_refused_and_leaves_nothing(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    # "Bridge" that exists but is no bridge of ours: refused before any
    # pair is made (the undo after a failed step: test_netns_veth_fast.py).
    await add_foreign_veth(kernel, "notabr", "notabrp")
    before = await link_names(kernel)
    with pytest.raises(DataplaneError, match=r"^enslave pndv1h to notabr: "):
        await dataplane.ensure_veth(dataclasses.replace(VETH, bridge="notabr"))
    assert await link_names(kernel) == before


@pytest.mark.parametrize("taken", ["pndv1h", "pndv1p"])
async def test_foreign_name_is_refused_and_untouched(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute, taken: str
) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    idx = await add_foreign_veth(kernel, taken, "pndforeign")
    with pytest.raises(ForeignLinkError) as err:
        await dataplane.ensure_veth(VETH)
    assert (
        str(err.value)
        == f"link {taken} exists and was not created by pynetdrv for endpoint {EP[:12]}"
    )
    link = await get_link(kernel, taken)
    assert link["index"] == idx and link.get("ifalias") is None and link.get("master") is None
    assert await link_names(kernel) == {"lo", "pndbr0", taken, "pndforeign"}


async def test_remove_veth_is_idempotent(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    await dataplane.remove_veth("pndv1h", EP)
    assert await link_names(kernel) == {"lo", "pndbr0"}  # both ends gone
    await dataplane.remove_veth("pndv1h", EP)
    assert await link_names(kernel) == {"lo", "pndbr0"}


@pytest.mark.parametrize("owner", [None, OTHER_EP], ids=["unaliased", "other-endpoint"])
async def test_remove_veth_leaves_other_links_alone(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute, owner: str | None
) -> None:
    idx = await add_foreign_veth(kernel, "pndv1h", "pndv1p")
    if owner:
        await kernel.link("set", index=idx, ifalias=owner_alias("veth", owner))
    await dataplane.remove_veth("pndv1h", EP)
    assert await kernel.link_lookup(ifname="pndv1h") == [idx]


async def test_stale_peer_of_ours_is_replaced(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    # Host end gone from under its name (renamed here; moved away in real
    # life), our peer left behind: the pair is recreated, not refused.
    host = (await kernel.link_lookup(ifname="pndv1h"))[0]
    await kernel.link("set", index=host, state="down")  # older kernels refuse renaming up links
    await kernel.link("set", index=host, ifname="pndmoved")
    await dataplane.ensure_veth(VETH)
    assert await link_names(kernel) == {"lo", "pndbr0", "pndv1h", "pndv1p"}
    assert await veth_state(kernel) == await expected(kernel)
