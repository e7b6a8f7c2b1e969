"""ensure_bridge / remove_bridge against the kernel, read back over netlink."""

from __future__ import annotations

import dataclasses

import pytest
from netns_util import (
    IFA_F_DADFAILED,
    IFA_F_TENTATIVE,
    IFF_UP,
    add_foreign_bridge,
    add_foreign_veth,
    get_link,
    global_addresses,
)
from pyroute2 import AsyncIPRoute

from pynetdrv.dataplane.base import (
    BridgeSpec,
    DataplaneError,
    ForeignLinkError,
    owner_alias,
)
from pynetdrv.dataplane.netlink import NetlinkDataplane

NET = "5e1f" + "0123456789abcdef" * 3 + "a1b2c3d4e5f6"
OTHER_NET = "9" * 64
SPEC = BridgeSpec(
    name="pndbr0",
    network_id=NET,
    mac="02:42:0a:fb:00:01",
    mtu=1400,
    addresses=("10.251.0.1/24", "fd00:251::1/64"),
)


async def bridge_state(ipr: AsyncIPRoute, name: str) -> dict[str, object]:
    link = await get_link(ipr, name)
    assert link is not None, f"{name} missing"
    return {
        "index": link["index"],
        "kind": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        "alias": link.get("ifalias"),
        "mac": link.get("address"),
        "mtu": link.get("mtu"),
        "up": bool(link["flags"] & IFF_UP),
        "addresses": await global_addresses(ipr, link["index"]),
    }


def expected_state(index: object) -> dict[str, object]:
    return {
        "index": index,
        "kind": "bridge",
        "alias": f"pynetdrv:bridge:{NET}",
        "mac": "02:42:0a:fb:00:01",
        "mtu": 1400,
        "up": True,
        "addresses": {"10.251.0.1/24", "fd00:251::1/64"},
    }


async def test_bridge_created_as_specified(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(SPEC)
    state = await bridge_state(kernel, "pndbr0")
    assert state == expected_state(state["index"])


async def test_ipv6_gateway_usable_at_once(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(SPEC)
    link = await get_link(kernel, "pndbr0")
    flags = [
        a["flags"]
        async for a in await kernel.addr("dump", index=link["index"])
        if a.get("address") == "fd00:251::1"
    ]
    # NODAD: not tentative (it would stay tentative on a port-less bridge).
    assert len(flags) == 1 and not flags[0] & (IFA_F_TENTATIVE | IFA_F_DADFAILED)


async def test_ensure_bridge_is_idempotent(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(SPEC)
    first = await bridge_state(kernel, "pndbr0")
    await dataplane.ensure_bridge(SPEC)
    assert await bridge_state(kernel, "pndbr0") == first  # same index: not recreated


async def test_ensure_bridge_repairs_drift(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(SPEC)
    idx = (await kernel.link_lookup(ifname="pndbr0"))[0]
    await kernel.link("set", index=idx, mtu=1300, address="02:00:00:00:00:99", state="down")
    await kernel.addr("del", index=idx, address="10.251.0.1", prefixlen=24)
    await kernel.addr("add", index=idx, address="10.252.0.9", prefixlen=24)  # stray
    await kernel.addr("add", index=idx, address="fd00:251::1", prefixlen=64)  # no-op: exists
    assert (await bridge_state(kernel, "pndbr0")) != expected_state(idx)

    await dataplane.ensure_bridge(SPEC)
    assert await bridge_state(kernel, "pndbr0") == expected_state(idx)


async def test_ensure_bridge_changes_gateway_prefix(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(SPEC)
    spec = dataclasses.replace(SPEC, addresses=("10.251.0.1/16", "fd00:251::1/56"))
    await dataplane.ensure_bridge(spec)
    idx = (await kernel.link_lookup(ifname="pndbr0"))[0]
    assert await global_addresses(kernel, idx) == {"10.251.0.1/16", "fd00:251::1/56"}


async def test_foreign_bridge_with_the_name_is_refused_and_untouched(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await add_foreign_bridge(kernel, "pndbr0", mtu=1500)
    before = await bridge_state(kernel, "pndbr0")

    with pytest.raises(ForeignLinkError) as err:
        await dataplane.ensure_bridge(SPEC)
    assert (
        str(err.value)
        == f"link pndbr0 exists and was not created by pynetdrv for network {NET[:12]}"
    )
    assert await bridge_state(kernel, "pndbr0") == before
    assert before["alias"] is None and before["mtu"] == 1500 and not before["up"]


async def test_bridge_of_another_network_is_refused(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(dataclasses.replace(SPEC, network_id=OTHER_NET))
    with pytest.raises(ForeignLinkError, match="pndbr0"):
        await dataplane.ensure_bridge(SPEC)
    assert (await bridge_state(kernel, "pndbr0"))["alias"] == owner_alias("bridge", OTHER_NET)


async def test_our_alias_on_a_non_bridge_is_refused(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    idx = await add_foreign_veth(kernel, "pndbr0", "pndbr0p")
    await kernel.link("set", index=idx, ifalias=owner_alias("bridge", NET))
    with pytest.raises(ForeignLinkError, match="pndbr0 exists and is a veth, not a bridge"):
        await dataplane.ensure_bridge(SPEC)


async def test_failed_step_is_named(dataplane: NetlinkDataplane) -> None:
    # 10 is below the minimum MTU of 68: the kernel says EINVAL.
    with pytest.raises(DataplaneError, match=r"^create bridge pndbr0: Invalid argument$"):
        await dataplane.ensure_bridge(dataclasses.replace(SPEC, mtu=10))


async def test_remove_bridge_is_idempotent(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    await dataplane.ensure_bridge(SPEC)
    await dataplane.remove_bridge("pndbr0", NET)
    assert await get_link(kernel, "pndbr0") is None
    await dataplane.remove_bridge("pndbr0", NET)  # already gone: fine
    assert await get_link(kernel, "pndbr0") is None


@pytest.mark.parametrize("owner", [None, OTHER_NET], ids=["unaliased", "other-network"])
async def test_remove_bridge_leaves_other_links_alone(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute, owner: str | None
) -> None:
    idx = await add_foreign_bridge(kernel, "pndbr0")
    if owner:
        await kernel.link("set", index=idx, ifalias=owner_alias("bridge", owner))
    await dataplane.remove_bridge("pndbr0", NET)
    assert await kernel.link_lookup(ifname="pndbr0") == [idx]
