"""Startup reconcile against the real kernel: the store (SQLite file) and the
services are real, the namespace is a throwaway one standing in for the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyroute2 import AsyncIPRoute

from pynetdrv.api import network_models as m
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.reconcile import reconcile
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NET = "a1" * 32
EP = "b2" * 32
ORPHAN_NET = "c3" * 32


async def _names(kernel: AsyncIPRoute) -> set[str]:
    return {link.get("ifname") async for link in await kernel.link("dump")}


async def _create(svc: NetworkService, network_id: str, bridge: str, gateway: str, pool: str) -> None:
    await svc.create_network(m.CreateNetworkRequest(
        NetworkID=network_id,
        Options={"com.docker.network.generic": {"com.docker.network.bridge.name": bridge}},
        IPv4Data=[m.IPAMData(AddressSpace="local", Pool=pool, Gateway=gateway)],
    ))


async def test_reconcile_rebuilds_and_prunes(nsname: str, kernel: AsyncIPRoute, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    dp = NetlinkDataplane(netns=nsname)
    try:
        svc = NetworkService(store, dp, FakeFirewall(), FakeReserver())
        await _create(svc, NET, "pndrc0", "10.253.0.1/24", "10.253.0.0/24")
        await svc.create_endpoint(m.CreateEndpointRequest(
            NetworkID=NET, EndpointID=EP, Interface=m.EndpointInterface(Address="10.253.0.2/24")))
        # An orphan: a network the store forgets (as after a crash between the
        # kernel step and the store write), and a foreign link of the user's.
        await _create(svc, ORPHAN_NET, "pndrc1", "10.253.1.1/24", "10.253.1.0/24")
        await store.delete_network(ORPHAN_NET)
        await kernel.link("add", ifname="userbr0", kind="bridge")
        # "Host reboot": the known bridge and its veth vanish.
        for name in ("pnve-b2b2b2b2b2", "pndrc0"):
            (link,) = await kernel.link("get", ifname=name)
            await kernel.link("del", index=link["index"])

        report = await reconcile(store, dp)

        names = await _names(kernel)
        assert "pndrc0" in names, "known bridge was not recreated"
        assert "pndrc1" not in names, "orphan bridge was not removed"
        assert "userbr0" in names, "a foreign link was touched"
        assert "pnve-b2b2b2b2b2" in names, "unjoined endpoint's veth was not recreated"
        (br,) = await kernel.link("get", ifname="pndrc0")
        addrs = [a.get("address") async for a in await kernel.addr("dump", index=br["index"])]
        assert "10.253.0.1" in addrs
        assert report.errors == []
        # A second pass finds nothing to do.
        again = await reconcile(store, dp)
        assert again.links_removed == [] and again.veths_recreated == [] and again.errors == []
    finally:
        await dp.close()
        await store.close()


async def test_links_left_unmarked_by_a_crash_are_recognised_and_removed(
        nsname: str, kernel: AsyncIPRoute, tmp_path: Path) -> None:
    """The kernel takes no alias with RTM_NEWLINK, so a link is created, then marked. A
    SIGKILL in between used to leave an unmarked link nobody would remove; the birth MAC
    proves it is ours."""
    from pynetdrv.dataplane.base import BridgeSpec, VethSpec, birth_mac

    await kernel.link("add", ifname="pnve-halfmade0", kind="veth", peer={"ifname": "pnvc-halfmade0"},
                      address=birth_mac("pynetdrv", "pnve-halfmade0"))
    await kernel.link("add", ifname="pnbr-halfmade0", kind="bridge", address=birth_mac("pynetdrv", "pnbr-halfmade0"))
    await kernel.link("add", ifname="pnve-foreign00", kind="veth", peer={"ifname": "pnvc-foreign00"})
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    dp = NetlinkDataplane(netns=nsname)
    try:
        report = await reconcile(store, dp)
        assert sorted(report.links_removed) == ["pnbr-halfmade0", "pnve-halfmade0"]
        names = await _names(kernel)
        assert {"pnve-halfmade0", "pnvc-halfmade0", "pnbr-halfmade0"}.isdisjoint(names)
        assert "pnve-foreign00" in names, "an unmarked link with any other MAC is not ours"
        # A retried step finds its own half-made link and starts over instead of a Conflict.
        await kernel.link(
            "add", ifname="pnbr-retry0000", kind="bridge", address=birth_mac("pynetdrv", "pnbr-retry0000")
        )
        await dp.ensure_bridge(BridgeSpec("pnbr-retry0000", "e" * 64, "02:42:0a:00:00:01", None))
        await kernel.link("add", ifname="pnve-retry0000", kind="veth", peer={"ifname": "pnvc-retry0000"},
                          address=birth_mac("pynetdrv", "pnve-retry0000"))
        await dp.ensure_veth(VethSpec("pnve-retry0000", "pnvc-retry0000", "pnbr-retry0000", "f" * 64,
                                      "02:42:0a:00:00:02", None))
        owned = {link.name: link.object_id for link in await dp.owned_links()}
        assert owned == {"pnbr-retry0000": "e" * 64, "pnve-retry0000": "f" * 64, "pnvc-retry0000": "f" * 64}
    finally:
        await dp.close()
        await store.close()


@pytest.mark.parametrize("how", ["healthy", "hairpin-off", "nomaster", "down", "wrong-mtu"])
async def test_reconcile_repairs_only_the_veth_that_differs(
        nsname: str, kernel: AsyncIPRoute, tmp_path: Path, how: str) -> None:
    """Two endpoints; one is damaged as an admin could (or not at all).
    Reconcile rewrites only that one (decided from its one link dump: the
    healthy one gets no request of its own) and leaves it as ensure_veth does."""
    from counting_ipr import CountingIPRoute

    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    dp = NetlinkDataplane(netns=nsname)
    try:
        svc = NetworkService(store, dp, FakeFirewall(), FakeReserver())
        await svc.create_network(m.CreateNetworkRequest(
            NetworkID=NET, Options={"com.docker.network.generic": {
                "com.docker.network.bridge.name": "pndrc0", "com.docker.network.driver.mtu": "1450"}},
            IPv4Data=[m.IPAMData(AddressSpace="local", Pool="10.253.0.0/24", Gateway="10.253.0.1/24")]))
        for i, ep in enumerate((EP, "d4" * 32)):
            await svc.create_endpoint(m.CreateEndpointRequest(
                NetworkID=NET, EndpointID=ep, Interface=m.EndpointInterface(Address=f"10.253.0.{i + 2}/24")))
        names = ("pnve-b2b2b2b2b2", "pnve-d4d4d4d4d4")
        healthy = {n: await _port(kernel, n) for n in names}
        assert all(v == (True, True, 1, 1450) for v in healthy.values()), healthy
        (host,) = await kernel.link("get", ifname=names[0])
        damage = {"hairpin-off": lambda: kernel.brport("set", index=host["index"], mode=0),
                  "nomaster": lambda: kernel.link("set", index=host["index"], master=0),
                  "down": lambda: kernel.link("set", index=host["index"], state="down"),
                  "wrong-mtu": lambda: kernel.link("set", index=host["index"], mtu=1300)}.get(how)
        if damage is not None:
            await damage()
            assert await _port(kernel, names[0]) != healthy[names[0]]
        await dp.close()
        dp = NetlinkDataplane(netns=nsname, socket_factory=CountingIPRoute)  # as after a restart
        report = await reconcile(store, dp)
        assert report.errors == []
        assert report.veths_repaired == ([] if how == "healthy" else [names[0]])
        assert {n: await _port(kernel, n) for n in names} == healthy
        ipr = await dp._ipr()
        assert isinstance(ipr, CountingIPRoute)
        # Baseline: what ensure_bridge and the one dump cost alone (an
        # unchanged bridge); a healthy veth adds nothing to it, a damaged
        # one its get and the writes that fix it.
        baseline = NetlinkDataplane(netns=nsname, socket_factory=CountingIPRoute)
        try:
            await baseline.ensure_bridge(await svc_bridge(store))
            await baseline.owned_links()
            alone = len((await baseline._ipr()).sends)  # type: ignore[attr-defined]
        finally:
            await baseline.close()
        extra = len(ipr.sends) - alone
        assert extra == 0 if how == "healthy" else 2 <= extra <= 4, ipr.sends
    finally:
        await dp.close()
        await store.close()


async def svc_bridge(store: SQLiteStore) -> Any:
    from pynetdrv.driver.service import bridge_spec

    net = await store.get_network(NET)
    assert net is not None
    return bridge_spec(net)


async def _port(kernel: AsyncIPRoute, name: str) -> tuple[Any, ...]:
    (link,) = await kernel.link("get", ifname=name)
    (br,) = await kernel.link("get", ifname="pndrc0")
    return (link.get("master") == br["index"], bool(link["flags"] & 1),
            link.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE"), link.get("mtu"))
