"""Startup reconcile over the FakeDataplane and the real store: the kernel is
made to match the store, foreign links are never touched, and a second run
changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from pynetdrv.api import network_models as nm
from pynetdrv.dataplane.base import BridgeSpec, VethSpec, owner_alias
from pynetdrv.driver.service import NetworkService
from pynetdrv.reconcile import reconcile
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane, FakeLink
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NID = "fa3c5b26e4d633f0ed05677ce5c371fbdad26153b46ee011a60c4a95cc566069"
NID2 = "aad8b42cf9ce079beb713487cec538cd22f0d6a6650482bd662c8d560e690059"
GHOST_NET = "0123456789abcdef" * 4
EP_JOINED = "2998f72c5e354322daf63ecba9dc084588134edb492ddc99e317b72693b40d02"
EP_IDLE = "06fd54c349e6a52b4671361957e1b6e6802ee850910848e88f87ee1b93e1f6be"
GHOST_EP = "fedcba9876543210" * 4


async def build(store: SQLiteStore, dp: FakeDataplane) -> NetworkService:
    """Two networks; on the first a joined and a not-yet-joined endpoint."""
    svc = NetworkService(store, dp, FakeFirewall(), FakeReserver())
    for nid, pool in ((NID, "10.1.0"), (NID2, "10.2.0")):
        await svc.create_network(nm.CreateNetworkRequest(
            NetworkID=nid, Options={"com.docker.network.generic": {"com.docker.network.driver.mtu": "1450"}},
            IPv4Data=[nm.IPAMData(AddressSpace="local", Pool=f"{pool}.0/24", Gateway=f"{pool}.1/24")], IPv6Data=[]))
    for eid, addr in ((EP_JOINED, "10.1.0.2/24"), (EP_IDLE, "10.1.0.3/24")):
        await svc.create_endpoint(nm.CreateEndpointRequest(
            NetworkID=NID, EndpointID=eid, Interface=nm.EndpointInterface(Address=addr)))
    await svc.join(nm.JoinRequest(NetworkID=NID, EndpointID=EP_JOINED, SandboxKey="/var/run/docker/netns/abc"))
    return svc


def kernel(dp: FakeDataplane) -> dict[str, tuple[Any, ...]]:
    return {n: (link.kind, link.alias, link.spec) for n, link in dp.links.items()}


async def state(store: SQLiteStore) -> tuple[Any, ...]:
    return await store.list_networks(), await store.list_endpoints()


async def test_nothing_to_do_when_kernel_matches(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    before_k, before_s = kernel(dp), await state(store)
    report = await reconcile(store, dp)
    assert kernel(dp) == before_k and await state(store) == before_s
    assert report.links_removed == [] and report.endpoints_forgotten == [] and report.veths_recreated == []
    assert report.errors == []


async def test_missing_bridge_is_recreated_as_it_was(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    net = await store.get_network(NID2)
    assert net is not None
    original = dp.links[net.bridge].spec
    del dp.links[net.bridge]
    report = await reconcile(store, dp)
    assert net.bridge in report.bridges_ensured
    assert dp.links[net.bridge].spec == original
    assert isinstance(original, BridgeSpec) and original.mtu == 1450 and original.addresses == ("10.2.0.1/24",)


async def test_host_reboot_recreates_bridges_forgets_joined_and_recreates_idle(store: SQLiteStore,
                                                                             dp: FakeDataplane) -> None:
    await build(store, dp)
    before = kernel(dp)
    idle = await store.get_endpoint(EP_IDLE)
    joined = await store.get_endpoint(EP_JOINED)
    assert idle is not None and joined is not None
    dp.links.clear()  # a reboot takes every link with it
    report = await reconcile(store, dp)
    assert report.endpoints_forgotten == [EP_JOINED]
    assert report.veths_recreated == [idle.host_ifname]
    assert await store.get_endpoint(EP_JOINED) is None
    assert await store.get_endpoint(EP_IDLE) == idle
    want = {n: v for n, v in before.items() if n not in (joined.host_ifname, joined.peer_ifname)}
    assert kernel(dp) == want
    assert report.errors == []


async def test_joined_endpoint_whose_veth_vanished_is_forgotten(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    joined = await store.get_endpoint(EP_JOINED)
    assert joined is not None
    # The container's namespace died and took the pair with it.
    del dp.links[joined.host_ifname]
    del dp.links[joined.peer_ifname]
    report = await reconcile(store, dp)
    assert report.endpoints_forgotten == [EP_JOINED] and report.veths_recreated == []
    assert [e.endpoint_id for e in await store.list_endpoints()] == [EP_IDLE]
    assert joined.host_ifname not in dp.links and joined.peer_ifname not in dp.links


async def test_unjoined_endpoint_whose_veth_vanished_is_recreated(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    idle = await store.get_endpoint(EP_IDLE)
    assert idle is not None
    spec = dp.links[idle.host_ifname].spec
    del dp.links[idle.host_ifname]
    del dp.links[idle.peer_ifname]
    report = await reconcile(store, dp)
    assert report.veths_recreated == [idle.host_ifname] and report.endpoints_forgotten == []
    assert dp.links[idle.host_ifname].spec == spec and idle.peer_ifname in dp.links
    assert isinstance(spec, VethSpec) and spec.mtu == 1450


async def test_unknown_owned_links_are_removed(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    good = kernel(dp)
    # Left behind by a crash between a kernel step and its store write.
    await dp.ensure_bridge(BridgeSpec(name="pnbr-ghost", network_id=GHOST_NET, mac="02:00:00:00:00:01", mtu=None))
    await dp.ensure_veth(VethSpec(host_name="pnve-ghost", peer_name="pnvc-ghost", bridge="pnbr-ghost",
                                  endpoint_id=GHOST_EP, mac="02:00:00:00:00:02", mtu=None))
    # An orphan veth of a dead endpoint on a live network.
    net = await store.get_network(NID)
    assert net is not None
    await dp.ensure_veth(VethSpec(host_name="pnve-orphan", peer_name="pnvc-orphan", bridge=net.bridge,
                                  endpoint_id="ab" * 32, mac="02:00:00:00:00:03", mtu=None))
    report = await reconcile(store, dp)
    assert {"pnbr-ghost", "pnve-ghost", "pnve-orphan"} <= set(report.links_removed)
    assert kernel(dp) == good
    assert report.errors == []


async def test_foreign_links_are_untouched(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    dp.add_foreign("eth0", "physical")
    dp.add_foreign("docker0", "bridge")
    dp.add_foreign("pnbr-lookalike", "bridge")
    # Links of a second pynetdrv instance (another driver name) are not ours either.
    other = owner_alias("bridge", GHOST_NET, "pynetdrv-it")
    dp.links["pnbr-otherinst"] = FakeLink("pnbr-otherinst", "bridge", other)
    dp.links["pnve-otherinst"] = FakeLink("pnve-otherinst", "veth", owner_alias("veth", GHOST_EP, "pynetdrv-it"))
    before = kernel(dp)
    report = await reconcile(store, dp)
    assert kernel(dp) == before
    assert report.links_removed == []
    for name in ("eth0", "docker0", "pnbr-lookalike", "pnbr-otherinst", "pnve-otherinst"):
        assert ("remove_bridge", name) not in dp.calls and ("remove_veth", name) not in dp.calls


async def test_second_reconcile_changes_nothing(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    dp.add_foreign("eth0")
    idle = await store.get_endpoint(EP_IDLE)
    net2 = await store.get_network(NID2)
    assert idle is not None and net2 is not None
    del dp.links[idle.host_ifname]
    del dp.links[net2.bridge]
    await dp.ensure_bridge(BridgeSpec(name="pnbr-ghost", network_id=GHOST_NET, mac="02:00:00:00:00:01", mtu=None))
    await reconcile(store, dp)
    after_first = kernel(dp), await state(store)
    report = await reconcile(store, dp)
    assert (kernel(dp), await state(store)) == after_first
    assert report.links_removed == [] and report.endpoints_forgotten == [] and report.veths_recreated == []
    assert report.errors == []


async def test_one_failing_step_does_not_stop_the_rest(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    net1, net2 = await store.get_network(NID), await store.get_network(NID2)
    assert net1 is not None and net2 is not None
    del dp.links[net1.bridge]
    del dp.links[net2.bridge]
    await dp.ensure_bridge(BridgeSpec(name="pnbr-ghost", network_id=GHOST_NET, mac="02:00:00:00:00:01", mtu=None))
    dp.fail_next = "ensure_bridge"
    report = await reconcile(store, dp)
    assert len(report.errors) == 1 and "injected" in report.errors[0] and net1.bridge in report.errors[0]
    # The other network's bridge and the ghost's removal still happened.
    assert "pnbr-ghost" not in dp.links
    assert ("ensure_bridge", net2.bridge) in dp.calls and net2.bridge in dp.links
    # And the next start finishes the job.
    report = await reconcile(store, dp)
    assert report.errors == [] and net1.bridge in dp.links and net2.bridge in dp.links


async def test_reconcile_on_an_empty_store_removes_all_owned_links(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    dp.add_foreign("eth0")
    fresh = SQLiteStore(":memory:")
    await fresh.open()
    try:
        report = await reconcile(fresh, dp)
    finally:
        await fresh.close()
    assert set(dp.links) == {"eth0"}
    assert len(report.links_removed) >= 3


async def test_foreign_link_that_took_the_bridge_name_is_left_alone(store: SQLiteStore, dp: FakeDataplane) -> None:
    await build(store, dp)
    net = await store.get_network(NID2)
    assert net is not None
    del dp.links[net.bridge]
    dp.add_foreign(net.bridge, "bridge")  # someone else's link took the name while we were down
    report = await reconcile(store, dp)
    assert len(report.errors) == 1 and net.bridge in report.errors[0]
    assert dp.links[net.bridge].alias is None
    assert await store.get_network(NID2) == net  # kept, for the user to sort out


async def test_recreated_bridge_gets_its_surviving_veths_back(store: SQLiteStore, dp: FakeDataplane) -> None:
    """Only the bridge vanished (deleted by hand or by another tool while we
    were down); the veths survived, and the kernel released them from the
    bridge when it went.  Re-creating the bridge is not enough: each
    endpoint's host end must be enslaved again (Dataplane.ensure_veth), or
    the running containers on that network stay cut off."""
    await build(store, dp)
    net = await store.get_network(NID)
    assert net is not None
    eps = await store.list_endpoints(NID)
    assert len(eps) == 2 and all(e.host_ifname in dp.links for e in eps)
    del dp.links[net.bridge]
    dp.calls.clear()
    await reconcile(store, dp)
    assert ("ensure_bridge", net.bridge) in dp.calls
    reattached = {name for step, name in dp.calls if step == "ensure_veth"}
    assert reattached == {e.host_ifname for e in eps}, f"veths not re-attached to {net.bridge}: {dp.calls}"


async def test_healthy_veths_are_not_re_ensured(store: SQLiteStore, dp: FakeDataplane) -> None:
    """The one link dump already shows them as specified: no ensure_veth
    (a restart over many endpoints would otherwise read each one again)."""
    await build(store, dp)
    dp.calls.clear()
    report = await reconcile(store, dp)
    assert [c for c in dp.calls if c[0] == "ensure_veth"] == []
    assert report.veths_repaired == [] and report.errors == []


@pytest.mark.parametrize("damage", [
    {"hairpin": False}, {"master": None}, {"up": False}, {"mtu": 1300}, {"master": "pnbr-elsewhere"},
], ids=["hairpin-off", "nomaster", "down", "wrong-mtu", "other-master"])
async def test_a_veth_that_differs_from_its_spec_is_re_ensured(
    store: SQLiteStore, dp: FakeDataplane, damage: dict[str, Any]
) -> None:
    await build(store, dp)
    idle, joined = await store.get_endpoint(EP_IDLE), await store.get_endpoint(EP_JOINED)
    assert idle is not None and joined is not None
    if damage.get("master") == "pnbr-elsewhere":
        dp.add_foreign("pnbr-elsewhere", "bridge")
    healthy = kernel(dp)[idle.host_ifname]
    for attr, value in damage.items():
        setattr(dp.links[idle.host_ifname], attr, value)
    dp.calls.clear()
    report = await reconcile(store, dp)
    # Only the damaged one, and it is as ensure_veth leaves it again.
    assert [c for c in dp.calls if c[0] == "ensure_veth"] == [("ensure_veth", idle.host_ifname)]
    assert report.veths_repaired == [idle.host_ifname] and report.errors == []
    link = dp.links[idle.host_ifname]
    assert kernel(dp)[idle.host_ifname] == healthy
    assert (link.master, link.up, link.mtu, link.hairpin) == (link.spec.bridge, True, 1450, True)  # type: ignore[union-attr]
