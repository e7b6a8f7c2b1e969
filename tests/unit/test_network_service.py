"""NetworkService over the FakeDataplane and the real store: what reaches the
kernel seam, what is stored, and that failures leave nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import netaddr
import pytest
from unit_helpers import GATEWAY_OPTS

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.dataplane.fake import FakeDataplane
from pynetdrv.driver.naming import IFNAMSIZ, veth_names
from pynetdrv.driver.service import NetworkService
from pynetdrv.errors import Conflict, Internal, InvalidParameter, NotFound, PynetdrvError
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore

NID = "fa3c5b26e4d633f0ed05677ce5c371fbdad26153b46ee011a60c4a95cc566069"
NID2 = "aad8b42cf9ce079beb713487cec538cd22f0d6a6650482bd662c8d560e690059"
EID = "2998f72c5e354322daf63ecba9dc084588134edb492ddc99e317b72693b40d02"
EID2 = "06fd54c349e6a52b4671361957e1b6e6802ee850910848e88f87ee1b93e1f6be"
GENERIC = "com.docker.network.generic"


def create_req(nid: str = NID, generic: dict[str, Any] | None = None,
               v4: list[tuple[str, str]] | None = None, v6: list[tuple[str, str]] | None = None,
               internal: bool = False) -> nm.CreateNetworkRequest:
    v4 = [("10.1.0.0/16", "10.1.0.1/16")] if v4 is None else v4
    v6 = v6 or []
    options: dict[str, Any] = {"com.docker.network.enable_ipv6": bool(v6), GENERIC: generic or {}}
    if internal:
        options["com.docker.network.internal"] = True
    return nm.CreateNetworkRequest(
        NetworkID=nid, Options=options,
        IPv4Data=[nm.IPAMData(AddressSpace="local", Pool=p, Gateway=g) for p, g in v4],
        IPv6Data=[nm.IPAMData(AddressSpace="local", Pool=p, Gateway=g) for p, g in v6],
    )


def ep_req(eid: str = EID, nid: str = NID, address: str = "10.1.0.2/16", v6: str = "",
           mac: str = "") -> nm.CreateEndpointRequest:
    return nm.CreateEndpointRequest(
        NetworkID=nid, EndpointID=eid,
        Interface=nm.EndpointInterface(Address=address, AddressIPv6=v6, MacAddress=mac),
        Options={"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []},
    )


def ref(eid: str = EID, nid: str = NID) -> nm.EndpointRef:
    return nm.EndpointRef(NetworkID=nid, EndpointID=eid)


def join_req(eid: str = EID, nid: str = NID, key: str = "/var/run/docker/netns/e6e11d048760") -> nm.JoinRequest:
    return nm.JoinRequest(NetworkID=nid, EndpointID=eid, SandboxKey=key, Options={})


def bridges(dp: FakeDataplane) -> dict[str, BridgeSpec]:
    return {n: link.spec for n, link in dp.links.items() if link.kind == "bridge" and isinstance(link.spec, BridgeSpec)}


def veths(dp: FakeDataplane) -> dict[str, VethSpec]:
    return {n: link.spec for n, link in dp.links.items() if link.kind == "veth" and isinstance(link.spec, VethSpec)}


def is_local_unicast(mac: str) -> bool:
    first = int(netaddr.EUI(mac).words[0])
    return first & 0x02 == 0x02 and first & 0x01 == 0


async def snapshot(store: SQLiteStore, dp: FakeDataplane) -> tuple[Any, ...]:
    return (await store.list_networks(), await store.list_endpoints(),
            {n: (link.kind, link.alias, link.spec) for n, link in dp.links.items()})


# CreateNetwork --------------------------------------------------------------------------------

async def test_create_network_builds_the_bridge(net: NetworkService, dp: FakeDataplane, store: SQLiteStore) -> None:
    assert (await net.create_network(create_req())).model_dump() == {}
    (name, spec), = bridges(dp).items()
    assert len(name) <= IFNAMSIZ and NID[:10] in name
    assert spec.name == name and spec.network_id == NID
    assert spec.addresses == ("10.1.0.1/16",) and spec.mtu is None
    assert is_local_unicast(spec.mac)
    rec = await store.get_network(NID)
    assert rec is not None and rec.bridge == name and rec.gateways == ("10.1.0.1/16",) and rec.pools == ("10.1.0.0/16",)
    assert rec.internal is False


async def test_bridge_name_and_mac_are_stable_per_network(store: SQLiteStore) -> None:
    seen = []
    for _ in range(2):
        dp = FakeDataplane()
        svc = NetworkService(store, dp)
        await svc.create_network(create_req())
        seen.append(next(iter(bridges(dp).values())))
        await svc.delete_network(nm.NetworkRef(NetworkID=NID))
    assert (seen[0].name, seen[0].mac) == (seen[1].name, seen[1].mac)
    other = FakeDataplane()
    await NetworkService(store, other).create_network(create_req(NID2, v4=[("10.2.0.0/16", "10.2.0.1/16")]))
    spec2 = next(iter(bridges(other).values()))
    assert spec2.name != seen[0].name and spec2.mac != seen[0].mac


async def test_bridge_name_option_and_mtu(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req(generic={"com.docker.network.bridge.name": "mybr0",
                                                 "com.docker.network.driver.mtu": "1400"}))
    assert list(bridges(dp)) == ["mybr0"]
    assert bridges(dp)["mybr0"].mtu == 1400
    await net.create_endpoint(ep_req())
    assert {v.mtu for v in veths(dp).values()} == {1400}
    assert {v.bridge for v in veths(dp).values()} == {"mybr0"}


async def test_gateway_gets_the_pool_prefix_v4_and_v6(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req(v4=[("10.1.0.0/16", "10.1.0.1/24")], v6=[("fd00:30::/64", "fd00:30::1/64")]))
    spec = next(iter(bridges(dp).values()))
    assert spec.addresses == ("10.1.0.1/16", "fd00:30::1/64")


async def test_network_without_gateway(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req(v4=[("10.1.0.0/16", "")]))
    assert next(iter(bridges(dp).values())).addresses == ()


async def test_two_subnets_per_family(net: NetworkService, dp: FakeDataplane) -> None:
    await net.create_network(create_req(v4=[("10.1.0.0/24", "10.1.0.1/24"), ("10.2.0.0/24", "10.2.0.254/24")]))
    assert next(iter(bridges(dp).values())).addresses == ("10.1.0.1/24", "10.2.0.254/24")


async def test_gateway_outside_pool_is_refused(net: NetworkService, dp: FakeDataplane, store: SQLiteStore) -> None:
    with pytest.raises(InvalidParameter, match=r"10\.9\.0\.1"):
        await net.create_network(create_req(v4=[("10.1.0.0/16", "10.9.0.1/16")]))
    assert dp.links == {} and await store.list_networks() == []


async def test_unknown_o_key_is_refused_by_name_and_changes_nothing(net: NetworkService, dp: FakeDataplane,
                                                                      store: SQLiteStore) -> None:
    with pytest.raises(InvalidParameter) as e:
        await net.create_network(create_req(generic={"com.docker.network.driver.mtu": "1400", "mtu": "1400"}))
    assert "mtu" in str(e.value) and "com.docker.network.driver.mtu" in str(e.value)
    assert dp.links == {} and dp.calls == [] and await store.list_networks() == []


@pytest.mark.parametrize("mtu", ["abc", "", "67", "65536", "-1", "1400.5"])
async def test_bad_mtu(net: NetworkService, dp: FakeDataplane, store: SQLiteStore, mtu: str) -> None:
    req = create_req(generic={"com.docker.network.driver.mtu": mtu})
    if mtu == "":
        await net.create_network(req)  # empty means "not set"
        assert next(iter(bridges(dp).values())).mtu is None
        return
    with pytest.raises(InvalidParameter, match="mtu"):
        await net.create_network(req)
    assert dp.links == {} and await store.list_networks() == []


@pytest.mark.parametrize("name", ["this-name-is-too-long", "br 0", "br/0", "br:0", "..", "bré", "br0\n"])
async def test_bad_bridge_name(net: NetworkService, dp: FakeDataplane, store: SQLiteStore, name: str) -> None:
    with pytest.raises(InvalidParameter, match="bridge.name"):
        await net.create_network(create_req(generic={"com.docker.network.bridge.name": name}))
    assert dp.links == {} and await store.list_networks() == []


async def test_foreign_link_with_the_wanted_name_is_refused(net: NetworkService, dp: FakeDataplane,
                                                             store: SQLiteStore) -> None:
    dp.add_foreign("mybr0", "bridge")
    before = dict(dp.links)
    with pytest.raises(PynetdrvError) as e:
        await net.create_network(create_req(generic={"com.docker.network.bridge.name": "mybr0"}))
    assert "mybr0" in str(e.value)
    assert dp.links == before and dp.links["mybr0"].alias is None
    assert await store.list_networks() == []


async def test_second_network_cannot_take_the_first_ones_bridge(net: NetworkService, dp: FakeDataplane,
                                                                 store: SQLiteStore) -> None:
    await net.create_network(create_req(generic={"com.docker.network.bridge.name": "shared0"}))
    before = await snapshot(store, dp)
    with pytest.raises(Conflict, match="shared0"):
        await net.create_network(create_req(NID2, generic={"com.docker.network.bridge.name": "shared0"},
                                            v4=[("10.2.0.0/16", "10.2.0.1/16")]))
    assert await snapshot(store, dp) == before


async def test_dataplane_failure_undoes_and_stores_nothing(net: NetworkService, dp: FakeDataplane,
                                                          store: SQLiteStore) -> None:
    dp.fail_next = "ensure_bridge"
    with pytest.raises(Internal, match="injected"):
        await net.create_network(create_req())
    assert dp.links == {} and await store.list_networks() == []
    # Nothing is left that would block a retry.
    await net.create_network(create_req())
    assert len(bridges(dp)) == 1 and len(await store.list_networks()) == 1


async def test_create_network_retry_is_idempotent(net: NetworkService, dp: FakeDataplane, store: SQLiteStore) -> None:
    await net.create_network(create_req())
    await net.create_network(create_req())
    assert len(bridges(dp)) == 1 and len(await store.list_networks()) == 1


async def test_failed_retry_keeps_the_working_network(net: NetworkService, dp: FakeDataplane,
                                                      store: SQLiteStore) -> None:
    await net.create_network(create_req())
    dp.fail_next = "ensure_bridge"
    with pytest.raises(Internal):
        await net.create_network(create_req())
    assert len(bridges(dp)) == 1 and await store.get_network(NID) is not None


async def test_internal_flag_is_stored(net: NetworkService, store: SQLiteStore) -> None:
    await net.create_network(create_req(internal=True))
    rec = await store.get_network(NID)
    assert rec is not None and rec.internal is True


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


# Deletes ----------------------------------------------------------------------------------------

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


async def test_delete_network_idempotent_for_unknown(net: NetworkService, dp: FakeDataplane) -> None:
    await net.delete_network(nm.NetworkRef(NetworkID=NID))
    await net.create_network(create_req())
    await net.delete_network(nm.NetworkRef(NetworkID=NID))
    await net.delete_network(nm.NetworkRef(NetworkID=NID))
    assert dp.links == {}


async def test_delete_network_removes_remaining_endpoints(net: NetworkService, dp: FakeDataplane,
                                                          store: SQLiteStore) -> None:
    dp.add_foreign("eth0")
    await net.create_network(create_req())
    await net.create_network(create_req(NID2, v4=[("10.2.0.0/16", "10.2.0.1/16")]))
    await net.create_endpoint(ep_req())
    await net.create_endpoint(ep_req(EID2, nid=NID2, address="10.2.0.2/16"))
    await net.join(join_req())
    await net.delete_network(nm.NetworkRef(NetworkID=NID))
    assert await store.get_network(NID) is None
    assert [e.endpoint_id for e in await store.list_endpoints()] == [EID2]
    assert {s.network_id for s in bridges(dp).values()} == {NID2}
    assert {v.endpoint_id for v in veths(dp).values()} == {EID2}
    assert "eth0" in dp.links


async def test_delete_network_kernel_failure_keeps_it_for_a_retry(net: NetworkService, dp: FakeDataplane,
                                                                  store: SQLiteStore) -> None:
    await net.create_network(create_req())
    dp.fail_next = "remove_bridge"
    with pytest.raises(Internal):
        await net.delete_network(nm.NetworkRef(NetworkID=NID))
    assert await store.get_network(NID) is not None
    await net.delete_network(nm.NetworkRef(NetworkID=NID))
    assert dp.links == {} and await store.get_network(NID) is None


@pytest.mark.parametrize("ipam_first", [True, False],
                         ids=["ipam-release-first(20.10.23+)", "delete-network-first(20.10.0-22)"])
async def test_both_delete_orders(net: NetworkService, ipam: IpamService, dp: FakeDataplane, store: SQLiteStore,
                                  ipam_first: bool) -> None:
    pool = await ipam.request_pool(im.RequestPoolRequest(AddressSpace="local", Pool="10.30.0.0/24"))
    gw = await ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID, Address="", Options=GATEWAY_OPTS))
    aux = await ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID, Address="10.30.0.200"))
    await net.create_network(create_req(v4=[(pool.Pool, gw.Address)]))
    addr = await ipam.request_address(im.RequestAddressRequest(PoolID=pool.PoolID, Address=""))
    await net.create_endpoint(ep_req(address=addr.Address))
    await net.join(join_req())
    await net.leave(ref())
    await net.delete_endpoint(ref())
    await ipam.release_address(im.ReleaseAddressRequest(PoolID=pool.PoolID, Address=addr.Address.split("/")[0]))

    async def release_ipam() -> None:
        for a in (gw.Address, aux.Address):
            await ipam.release_address(im.ReleaseAddressRequest(PoolID=pool.PoolID, Address=a.split("/")[0]))
        await ipam.release_pool(im.PoolRef(PoolID=pool.PoolID))

    if ipam_first:
        await release_ipam()
        await net.delete_network(nm.NetworkRef(NetworkID=NID))
    else:
        await net.delete_network(nm.NetworkRef(NetworkID=NID))
        await release_ipam()
    assert dp.links == {}
    assert await store.list_networks() == [] and await store.list_endpoints() == [] and await store.list_pools() == []


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


# External connectivity, swarm ------------------------------------------------------------------------

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


async def test_allocate_network_echoes_options(net: NetworkService) -> None:
    opts = {"com.docker.network.driver.mtu": "1450", "foo": "bar"}
    resp = await net.allocate_network(
        nm.AllocateNetworkRequest(NetworkID=NID, Options=opts, IPv4Data=[], IPv6Data=None))
    assert resp.Options == opts
    resp = await net.allocate_network(nm.AllocateNetworkRequest(NetworkID=NID, Options=None))
    assert resp.Options == {}
    assert (await net.free_network(nm.NetworkRef(NetworkID=NID))).model_dump() == {}


async def test_capabilities_are_local(net: NetworkService) -> None:
    caps = await net.capabilities(None)
    assert (caps.Scope, caps.ConnectivityScope) == ("local", "local")
