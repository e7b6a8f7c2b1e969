"""NetworkService over the FakeDataplane and the real store, endpoints:
CreateEndpoint, Join, Leave, EndpointOperInfo, DeleteEndpoint, external
connectivity, and concurrent endpoint calls -- what reaches the kernel seam,
what is stored, and that failures leave nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from driver_requests import EID, EID2, NID, NID2, create_req, ep_req, join_req, ref
from fake_dataplane_views import bridges, is_local_unicast, snapshot, veths

from pynetdrv.api import network_models as nm
from pynetdrv.driver.naming import IFNAMSIZ, veth_names
from pynetdrv.driver.service import NetworkService
from pynetdrv.errors import Conflict, Internal, InvalidParameter, NotFound
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane

# CreateEndpoint -------------------------------------------------------------------------------

async def test_create_endpoint_makes_the_veth_and_returns_a_mac(net: NetworkService, dp: FakeDataplane,
                                                                store: SQLiteStore) -> None:
    await net.create_network(create_req())
    resp = await net.create_endpoint(ep_req())
    assert resp.Interface is not None
    assert resp.Interface.Address == "" and resp.Interface.AddressIPv6 == ""
    mac = resp.Interface.MacAddress
    assert is_local_unicast(mac)
    bridge = next(iter(bridges(dp)))
    specs = veths(dp)
    assert len(specs) == 2  # both ends
    spec = next(iter(specs.values()))
    assert set(specs) == {spec.host_name, spec.peer_name} and spec.host_name != spec.peer_name
    assert all(len(n) <= IFNAMSIZ for n in specs)
    assert (spec.bridge, spec.endpoint_id, spec.mac, spec.mtu) == (bridge, EID, mac, None)
    ep = await store.get_endpoint(EID)
    assert ep is not None
    assert (ep.host_ifname, ep.peer_ifname, ep.mac) == (spec.host_name, spec.peer_name, mac)
    assert (ep.address, ep.network_id) == ("10.1.0.2/16", NID)


async def test_create_endpoint_with_docker_mac_returns_no_interface(net: NetworkService, dp: FakeDataplane,
                                                                     store: SQLiteStore) -> None:
    await net.create_network(create_req())
    resp = await net.create_endpoint(ep_req(mac="02:42:4B:B5:53:E9"))
    assert resp.Interface is None
    assert resp.model_dump(mode="json") == {"Interface": None}
    assert {v.mac for v in veths(dp).values()} == {"02:42:4b:b5:53:e9"}
    ep = await store.get_endpoint(EID)
    assert ep is not None and ep.mac == "02:42:4b:b5:53:e9"


async def test_create_endpoint_retry_returns_the_same_mac(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req())
    a = await net.create_endpoint(ep_req())
    b = await net.create_endpoint(ep_req())
    assert a.Interface is not None and b.Interface is not None
    assert a.Interface.MacAddress == b.Interface.MacAddress
    assert len(veths(dp)) == 2


async def test_create_endpoint_unknown_network(net: NetworkService, dp: FakeDataplane, store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match=NID[:12]):
        await net.create_endpoint(ep_req())
    assert dp.links == {} and await store.list_endpoints() == []


@pytest.mark.parametrize(("address", "v6", "mac"), [
    ("10.1.0.2", "", ""), ("", "fd00::2", ""), ("10.1.0.2/16", "", "zz:zz"), ("bogus/16", "", ""),
])
async def test_create_endpoint_bad_interface(net: NetworkService, dp: FakeDataplane, store: SQLiteStore,
                                             address: str, v6: str, mac: str) -> None:
    await net.create_network(create_req())
    before = await snapshot(store, dp)
    with pytest.raises(InvalidParameter):
        await net.create_endpoint(ep_req(address=address, v6=v6, mac=mac))
    assert await snapshot(store, dp) == before


async def test_create_endpoint_failure_undo(net: NetworkService, dp: FakeDataplane, store: SQLiteStore) -> None:
    await net.create_network(create_req())
    dp.fail_next = "ensure_veth"
    with pytest.raises(Internal, match="injected"):
        await net.create_endpoint(ep_req())
    assert veths(dp) == {} and await store.list_endpoints() == []
    assert len(bridges(dp)) == 1
    await net.create_endpoint(ep_req())
    assert len(veths(dp)) == 2 and len(await store.list_endpoints()) == 1


async def test_failed_retry_keeps_a_working_endpoint(net: NetworkService, dp: FakeDataplane,
                                                     store: SQLiteStore) -> None:
    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    dp.fail_next = "ensure_veth"
    with pytest.raises(Internal, match="injected"):
        await net.create_endpoint(ep_req())
    assert len(veths(dp)) == 2, "a failed retry tore down the endpoint's veth"
    assert [e.endpoint_id for e in await store.list_endpoints()] == [EID]


async def test_endpoint_id_on_another_network_is_a_conflict(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req())
    await net.create_network(create_req(NID2, v4=[("10.2.0.0/16", "10.2.0.1/16")]))
    await net.create_endpoint(ep_req())
    with pytest.raises(Conflict):
        await net.create_endpoint(ep_req(nid=NID2, address="10.2.0.2/16"))
    assert {v.bridge for v in veths(dp).values()} == {n for n, s in bridges(dp).items() if s.network_id == NID}


async def test_endpoint_veth_name_taken_by_a_foreign_link(net: NetworkService, dp: FakeDataplane,
                                                          store: SQLiteStore) -> None:
    await net.create_network(create_req())
    host, _ = veth_names(EID)
    dp.add_foreign(host, "veth")
    with pytest.raises(Conflict, match=host):
        await net.create_endpoint(ep_req())
    assert dp.links[host].alias is None and await store.list_endpoints() == []


# Join / Leave / OperInfo ----------------------------------------------------------------------

async def test_join_returns_peer_and_plain_gateway(net: NetworkService, dp: FakeDataplane, store: SQLiteStore) -> None:
    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    resp = await net.join(join_req())
    ep = await store.get_endpoint(EID)
    assert ep is not None
    assert resp.InterfaceName.SrcName == ep.peer_ifname and resp.InterfaceName.DstPrefix == "eth"
    assert resp.InterfaceName.SrcName in dp.links
    assert resp.Gateway == "10.1.0.1" and resp.GatewayIPv6 == ""
    assert resp.DisableGatewayService is True and resp.StaticRoutes == []
    assert ep.sandbox_key == "/var/run/docker/netns/e6e11d048760"


async def test_join_gateway_of_the_subnet_the_address_is_in(net: NetworkService) -> None:
    await net.create_network(create_req(v4=[("10.1.0.0/24", "10.1.0.1/24"), ("10.2.0.0/24", "10.2.0.254/24")],
                                        v6=[("fd00:1::/64", "fd00:1::1/64"), ("fd00:2::/64", "fd00:2::1/64")]))
    await net.create_endpoint(ep_req(address="10.2.0.7/24", v6="fd00:2::7/64"))
    await net.create_endpoint(ep_req(EID2, address="10.1.0.7/24"))
    a = await net.join(join_req())
    b = await net.join(join_req(EID2))
    assert (a.Gateway, a.GatewayIPv6) == ("10.2.0.254", "fd00:2::1")
    assert (b.Gateway, b.GatewayIPv6) == ("10.1.0.1", "")


async def test_join_on_internal_network_has_no_gateway(net: NetworkService) -> None:
    await net.create_network(create_req(internal=True, v6=[("fd00:1::/64", "fd00:1::1/64")]))
    await net.create_endpoint(ep_req(v6="fd00:1::5/64"))
    resp = await net.join(join_req())
    assert (resp.Gateway, resp.GatewayIPv6) == ("", "")
    assert resp.DisableGatewayService is True


async def test_join_unknown_endpoint_or_wrong_network(net: NetworkService) -> None:
    await net.create_network(create_req())
    with pytest.raises(NotFound, match=EID[:12]):
        await net.join(join_req())
    await net.create_endpoint(ep_req())
    with pytest.raises(NotFound):
        await net.join(join_req(nid=NID2))


async def test_join_heals_a_lost_veth(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    names = set(veths(dp))
    for n in names:
        del dp.links[n]
    resp = await net.join(join_req())
    assert set(veths(dp)) == names and resp.InterfaceName.SrcName in names


async def test_endpoint_oper_info(net: NetworkService, store: SQLiteStore) -> None:
    await net.create_network(create_req())
    with pytest.raises(NotFound):
        await net.endpoint_oper_info(ref())
    created = await net.create_endpoint(ep_req())
    await net.join(join_req())
    info = await net.endpoint_oper_info(ref())
    ep = await store.get_endpoint(EID)
    assert ep is not None and created.Interface is not None
    assert info.Value["MacAddress"] == created.Interface.MacAddress
    assert info.Value["HostInterface"] == ep.host_ifname
    with pytest.raises(NotFound):
        await net.endpoint_oper_info(ref(EID2))


async def test_leave_clears_the_sandbox_and_is_idempotent(net: NetworkService, store: SQLiteStore,
                                                          dp: FakeDataplane) -> None:
    await net.leave(ref())  # nothing known at all
    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    await net.join(join_req())
    links = dict(dp.links)
    await net.leave(ref())
    await net.leave(ref())
    ep = await store.get_endpoint(EID)
    assert ep is not None and ep.sandbox_key is None
    assert dp.links == links  # the veth goes in DeleteEndpoint, not Leave


# DeleteEndpoint ---------------------------------------------------------------------------------

async def test_delete_endpoint_removes_veth_and_is_idempotent(net: NetworkService, dp: FakeDataplane,
                                                              store: SQLiteStore) -> None:
    await net.delete_endpoint(ref())
    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    await net.create_endpoint(ep_req(EID2, address="10.1.0.3/16"))
    await net.delete_endpoint(ref())
    await net.delete_endpoint(ref())
    assert [e.endpoint_id for e in await store.list_endpoints()] == [EID2]
    assert {v.endpoint_id for v in veths(dp).values()} == {EID2}


async def test_delete_endpoint_with_kernel_failure_forgets_it_and_reconcile_cleans(net: NetworkService,
                                                                                  dp: FakeDataplane,
                                                                                  store: SQLiteStore) -> None:
    from pynetdrv.reconcile import reconcile

    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    dp.fail_next = "remove_veth"
    with pytest.raises(Internal):
        await net.delete_endpoint(ref())
    assert await store.get_endpoint(EID) is None
    await reconcile(store, dp)
    assert veths(dp) == {}


# Concurrency ----------------------------------------------------------------------------------------

def eid(i: int) -> str:
    return f"{i:04x}" + "c" * 60


async def test_concurrent_create_and_delete_endpoints_stay_consistent(net: NetworkService, dp: FakeDataplane,
                                                                      store: SQLiteStore) -> None:
    await net.create_network(create_req())
    await asyncio.gather(*(net.create_endpoint(ep_req(eid(i), address=f"10.1.0.{i + 2}/16")) for i in range(30)))
    ops: list[Awaitable[Any]] = [net.delete_endpoint(ref(eid(i))) for i in range(0, 30, 2)]
    ops += [net.create_endpoint(ep_req(eid(i), address=f"10.1.1.{i}/16")) for i in range(30, 50)]
    ops += [net.join(join_req(eid(i))) for i in range(1, 30, 2)]
    await asyncio.gather(*ops)
    want = {eid(i) for i in range(1, 30, 2)} | {eid(i) for i in range(30, 50)}
    stored = await store.list_endpoints()
    assert {e.endpoint_id for e in stored} == want
    # Every stored endpoint has both ends of its veth; there is no other veth.
    names = {n for e in stored for n in (e.host_ifname, e.peer_ifname)}
    assert set(veths(dp)) == names
    assert {v.endpoint_id for v in veths(dp).values()} == want
    assert len(bridges(dp)) == 1


async def test_concurrent_create_and_delete_of_the_same_endpoint(net: NetworkService, dp: FakeDataplane,
                                                                 store: SQLiteStore) -> None:
    await net.create_network(create_req())
    for _ in range(5):
        await asyncio.gather(net.create_endpoint(ep_req()), net.delete_endpoint(ref()), net.create_endpoint(ep_req()))
        ep = await store.get_endpoint(EID)
        if ep is None:
            assert veths(dp) == {}
        else:
            assert set(veths(dp)) == {ep.host_ifname, ep.peer_ifname}
        await net.delete_endpoint(ref())
        assert veths(dp) == {} and await store.list_endpoints() == []


async def test_delete_network_concurrent_with_endpoint_creation(net: NetworkService, dp: FakeDataplane,
                                                                store: SQLiteStore) -> None:
    await net.create_network(create_req())
    results = await asyncio.gather(
        *(net.create_endpoint(ep_req(eid(i), address=f"10.1.0.{i + 2}/16")) for i in range(10)),
        net.delete_network(nm.NetworkRef(NetworkID=NID)),
        *(net.create_endpoint(ep_req(eid(i), address=f"10.1.0.{i + 2}/16")) for i in range(10, 20)),
        return_exceptions=True,
    )
    for r in results:
        assert not isinstance(r, BaseException) or isinstance(r, NotFound), r
    assert await store.list_networks() == [] and await store.list_endpoints() == []
    assert dp.links == {}


# External connectivity ------------------------------------------------------------------------------

async def test_program_and_revoke_external_connectivity_are_recorded(net: NetworkService, store: SQLiteStore) -> None:
    await net.create_network(create_req())
    await net.create_endpoint(ep_req())
    opts = {"com.docker.network.portmap": [
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]}
    await net.program_external_connectivity(
        nm.ProgramExternalConnectivityRequest(NetworkID=NID, EndpointID=EID, Options=opts))
    ep = await store.get_endpoint(EID)
    assert ep is not None and ep.external == opts
    await net.revoke_external_connectivity(ref())
    ep = await store.get_endpoint(EID)
    assert ep is not None and ep.external is None
    await net.revoke_external_connectivity(ref(EID2))  # unknown: fine
    with pytest.raises(NotFound):
        await net.program_external_connectivity(nm.ProgramExternalConnectivityRequest(NetworkID=NID, EndpointID=EID2))
