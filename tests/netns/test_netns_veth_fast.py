"""The fast paths of ensure_veth (one add for a new pair, one get for a
healthy one), the repairs, the bridge-index cache, the EEXIST fallback, and
the light link dump, against the kernel in a throwaway namespace.  Requests
are counted by an AsyncIPRoute subclass handed to the dataplane's
constructor (counting_ipr.py)."""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from counting_ipr import CountingIPRoute, counting_sockets
from netns_util import IFF_UP, add_foreign_veth, get_link, link_names
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pynetdrv.dataplane.base import BridgeSpec, DataplaneError, ForeignLinkError, VethSpec, birth_mac, owner_alias
from pynetdrv.dataplane.linkdump import dump_links
from pynetdrv.dataplane.linkdump import get_link as light_get
from pynetdrv.dataplane.netlink import NetlinkDataplane

NET = "ab" * 32
EP = "e1" * 32
BRIDGE = BridgeSpec(name="pndbr0", network_id=NET, mac="02:42:0a:fb:00:01", mtu=1400, addresses=("10.251.0.1/24",))
VETH = VethSpec(host_name="pndv1h", peer_name="pndv1p", bridge="pndbr0", endpoint_id=EP,
                mac="02:42:0a:fb:00:02", mtu=1400)
ALIAS = owner_alias("veth", EP)


@pytest_asyncio.fixture
async def counted(nsname: str) -> AsyncIterator[tuple[NetlinkDataplane, CountingIPRoute]]:
    loop_socket, thread_socket = counting_sockets()
    dp = NetlinkDataplane(netns=nsname, socket_factory=loop_socket, slow_socket_factory=thread_socket)
    try:
        await dp.ensure_bridge(BRIDGE)
        ipr = await dp._ipr()  # the socket it opened through our factory
        assert isinstance(ipr, CountingIPRoute)
        ipr.sends.clear()
        yield dp, ipr
    finally:
        await dp.close()


async def state(ipr: AsyncIPRoute) -> dict[str, Any]:
    """Everything ensure_veth is responsible for, read back in full (pyroute2's decode)."""
    host, peer, br = [await get_link(ipr, n) for n in ("pndv1h", "pndv1p", "pndbr0")]
    assert host is not None and peer is not None and br is not None
    return {
        "host": (host.get("ifalias"), host.get("address"), host.get("mtu"), host.get("master") == br["index"],
                 bool(host["flags"] & IFF_UP), host.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_KIND"),
                 host.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE")),
        "peer": (peer.get("ifalias"), peer.get("address"), peer.get("mtu"), peer.get("master"),
                 bool(peer["flags"] & IFF_UP)),
    }


WANT = {
    # Birth MAC on the host end (the network's MAC is the bridge's, the
    # container's is the peer's), enslaved, up, hairpin on.
    "host": (ALIAS, birth_mac("pynetdrv", "pndv1h"), 1400, True, True, "bridge", 1),
    # The peer stays down and unenslaved: Docker moves it into the container.
    "peer": (ALIAS, "02:42:0a:fb:00:02", 1400, None, False),
}


async def test_new_pair_in_two_sends_with_the_full_state(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    """A pair the dataplane has never seen (CreateEndpoint of a new
    endpoint): add first, no read."""
    dp, ipr = counted
    await dp.ensure_veth(VETH)
    assert await state(kernel) == WANT
    # add (enslaved and up), both aliases + hairpin in one send.
    assert ipr.sends == [["newlink"], ["newlink", "newlink"]]


async def test_a_known_pair_gone_is_read_then_made_again(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    """A pair it made, removed behind its back: read first (it was known),
    ENODEV, then made as new."""
    dp, ipr = counted
    await dp.ensure_veth(VETH)
    (host,) = await kernel.link("get", ifname="pndv1h")
    await kernel.link("del", index=host["index"])
    ipr.sends.clear()
    await dp.ensure_veth(VETH)
    assert await state(kernel) == WANT
    assert ipr.sends == [["getlink"], ["newlink"], ["newlink", "newlink"]]


async def test_a_pair_seen_in_the_dump_costs_one_get(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute, nsname: str
) -> None:
    """Made by an earlier run (another dataplane here): once reconcile's
    dump has shown it, Join's ensure_veth reads it and writes nothing."""
    await _made_by_another_run(nsname)
    dp, ipr = counted
    assert "pndv1h" in {o.name for o in await dp.owned_links()}
    ipr.sends.clear()
    await dp.ensure_veth(VETH)
    assert ipr.sends == [["getlink"]]
    assert await state(kernel) == WANT


async def test_a_wrong_new_guess_still_ends_right(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute, nsname: str
) -> None:
    """The pair exists (damaged here) but this dataplane never saw it: the
    add meets EEXIST and the careful path repairs it."""
    await _made_by_another_run(nsname)
    await _damage(kernel, "nomaster")
    dp, ipr = counted
    ipr.sends.clear()
    await dp.ensure_veth(VETH)
    assert await state(kernel) == WANT
    assert ipr.sends[0] == ["newlink"]


async def test_a_wrong_new_guess_still_refuses_a_foreign_link(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    dp, _ = counted
    idx = await add_foreign_veth(kernel, "pndv1h", "pndforeign")
    with pytest.raises(ForeignLinkError, match="link pndv1h exists and was not created by pynetdrv"):
        await dp.ensure_veth(VETH)
    link = await get_link(kernel, "pndv1h")
    assert link["index"] == idx and link.get("ifalias") is None


async def _made_by_another_run(nsname: str) -> None:
    other = NetlinkDataplane(netns=nsname)
    try:
        await other.ensure_bridge(BRIDGE)
        await other.ensure_veth(VETH)
    finally:
        await other.close()


async def test_stepwise_path_gives_the_same_state(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    """The careful path (taken after EEXIST: here a stale peer of ours holds
    the peer name) ends in exactly the state of the fast path."""
    await dataplane.ensure_bridge(BRIDGE)
    await kernel.link("add", ifname="pndv1p", kind="veth", peer={"ifname": "pndjunk"})
    (peer,) = await kernel.link("get", ifname="pndv1p")
    await kernel.link("set", index=peer["index"], ifalias=ALIAS)
    await dataplane.ensure_veth(VETH)
    assert await state(kernel) == WANT
    assert "pndjunk" not in await link_names(kernel)


async def test_healthy_pair_costs_one_get_and_no_write(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    dp, ipr = counted
    await dp.ensure_veth(VETH)
    ipr.sends.clear()
    await dp.ensure_veth(VETH)  # what Join does
    assert ipr.sends == [["getlink"]]
    assert await state(kernel) == WANT


async def _damage(kernel: AsyncIPRoute, how: str) -> None:
    (host,) = await kernel.link("get", ifname="pndv1h")
    if how == "hairpin-off":
        await kernel.brport("set", index=host["index"], mode=0)
    elif how == "nomaster":
        await kernel.link("set", index=host["index"], master=0)
    elif how == "down":
        await kernel.link("set", index=host["index"], state="down")
    elif how == "wrong-mtu":
        await kernel.link("set", index=host["index"], mtu=1300)
    else:
        raise AssertionError(how)


DAMAGE = ["hairpin-off", "nomaster", "down", "wrong-mtu"]


@pytest.mark.parametrize("how", DAMAGE)
async def test_ensure_veth_repairs(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute, how: str
) -> None:
    dp, ipr = counted
    await dp.ensure_veth(VETH)
    await _damage(kernel, how)
    assert await state(kernel) != WANT
    ipr.sends.clear()
    await dp.ensure_veth(VETH)
    assert await state(kernel) == WANT
    assert ipr.writes(), "repaired without writing?"


@pytest.mark.parametrize("how", DAMAGE)
async def test_owned_links_shows_the_damage(dataplane: NetlinkDataplane, kernel: AsyncIPRoute, how: str) -> None:
    """What reconcile decides on (base.veth_in_shape over the light dump)."""
    from pynetdrv.dataplane.base import veth_in_shape

    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    host = {o.name: o for o in await dataplane.owned_links()}["pndv1h"]
    assert veth_in_shape(host, VETH)
    await _damage(kernel, how)
    host = {o.name: o for o in await dataplane.owned_links()}["pndv1h"]
    assert not veth_in_shape(host, VETH)


async def test_stale_bridge_index_is_read_again_once(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute, nsname: str
) -> None:
    """The bridge was deleted and made again by someone else (another
    dataplane: a new index) since this one cached it."""
    dp, ipr = counted
    (old,) = await kernel.link("get", ifname="pndbr0")
    await kernel.link("del", index=old["index"])
    other = NetlinkDataplane(netns=nsname)
    try:
        await other.ensure_bridge(BRIDGE)
    finally:
        await other.close()
    (new,) = await kernel.link("get", ifname="pndbr0")
    assert new["index"] != old["index"]
    ipr.sends.clear()
    await dp.ensure_veth(VETH)
    assert await state(kernel) == WANT
    # add with the stale index (fails), get bridge, add, batch.
    assert ipr.sends == [["newlink"], ["getlink"], ["newlink"], ["newlink", "newlink"]]


async def test_bridge_gone_fails_without_leaving_a_pair(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    dp, _ = counted
    (br,) = await kernel.link("get", ifname="pndbr0")
    await kernel.link("del", index=br["index"])
    with pytest.raises(DataplaneError, match=r"^enslave pndv1h to bridge pndbr0: No such device$"):
        await dp.ensure_veth(VETH)
    assert await link_names(kernel) == {"lo"}


async def test_foreign_bridge_under_the_name_is_refused(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await kernel.link("add", ifname="pndbr0", kind="bridge")
    with pytest.raises(ForeignLinkError, match=r"^enslave pndv1h to pndbr0: link pndbr0 is not a bridge"):
        await dataplane.ensure_veth(VETH)
    assert await link_names(kernel) == {"lo", "pndbr0"}


async def test_failure_after_the_add_undoes_the_pair(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    dp, ipr = counted
    ipr.fail_next = (["newlink", "newlink"], errno.EPERM)
    with pytest.raises(DataplaneError, match=r"^set alias and hairpin mode on pndv1h: Operation not permitted$"):
        await dp.ensure_veth(VETH)
    assert await link_names(kernel) == {"lo", "pndbr0"}


async def test_eexist_fallback_refuses_a_foreign_peer_name(
    counted: tuple[NetlinkDataplane, CountingIPRoute], kernel: AsyncIPRoute
) -> None:
    dp, ipr = counted
    idx = await add_foreign_veth(kernel, "pndv1p", "pndforeign")
    with pytest.raises(ForeignLinkError, match="link pndv1p exists and was not created by pynetdrv"):
        await dp.ensure_veth(VETH)
    link = await get_link(kernel, "pndv1p")
    assert link["index"] == idx and link.get("ifalias") is None
    assert await link_names(kernel) == {"lo", "pndbr0", "pndv1p", "pndforeign"}
    assert ipr.sends[0] == ["newlink"]  # the fast add was tried first


async def test_eexist_fallback_removes_an_unmarked_leftover_of_ours(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute
) -> None:
    """A crash between the add and the aliases leaves a pair with the birth
    MAC and no alias: ensure_veth starts over instead of refusing it."""
    await dataplane.ensure_bridge(BRIDGE)
    born = birth_mac("pynetdrv", "pndv1h")
    await kernel.link("add", ifname="pndv1h", kind="veth", peer={"ifname": "pndv1p"}, address=born)
    (before,) = await kernel.link("get", ifname="pndv1h")
    await dataplane.ensure_veth(VETH)
    assert await state(kernel) == WANT
    (after,) = await kernel.link("get", ifname="pndv1h")
    assert after["index"] != before["index"]


async def test_light_dump_matches_pyroute2s_full_decode(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    await dataplane.ensure_veth(
        dataclasses.replace(VETH, host_name="pndv2h", peer_name="pndv2p", endpoint_id="e2" * 32)
    )
    await _damage(kernel, "hairpin-off")
    await add_foreign_veth(kernel, "pndforeign", "pndforeignp")
    full = {link["index"]: link async for link in await kernel.link("dump")}
    light = {link.index: link for link in await dump_links(kernel)}
    assert set(light) == set(full) and len(full) == 8
    for index, link in full.items():
        got = light[index]
        assert (got.ifname, got.alias, got.address, got.mtu, got.master, got.flags) == (
            link.get("ifname"), link.get("ifalias"), link.get("address"), link.get("mtu"), link.get("master"),
            link["flags"])
        assert (got.kind, got.slave_kind, got.brport_mode) == (
            link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
            link.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_KIND"),
            link.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE"))
    assert {light[i].brport_mode for i in light if light[i].slave_kind == "bridge"} == {0, 1}


async def test_light_get_is_the_dump_entry(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    """ensure_* read single links with the same light decode (one get by name)."""
    await dataplane.ensure_bridge(BRIDGE)
    await dataplane.ensure_veth(VETH)
    await add_foreign_veth(kernel, "pndforeign", "pndforeignp")
    dumped = {link.ifname: link for link in await dump_links(kernel)}
    for name in ("pndbr0", "pndv1h", "pndv1p", "pndforeign", "lo"):
        assert await light_get(kernel, name) == dumped[name]
    with pytest.raises(NetlinkError) as err:
        await light_get(kernel, "pndnothere")
    assert err.value.code == errno.ENODEV
