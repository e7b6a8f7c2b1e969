"""NetworkService over the FakeDataplane and the real store, networks:
CreateNetwork (bridge, options, gateways), DeleteNetwork, AllocateNetwork and
capabilities -- what reaches the kernel seam, what is stored, and that
failures leave nothing behind."""

from __future__ import annotations

import pytest
from driver_requests import EID2, NID, NID2, create_req, ep_req, join_req, ref
from fake_dataplane_views import bridges, is_local_unicast, snapshot, veths
from unit_helpers import GATEWAY_OPTS

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.driver.naming import IFNAMSIZ
from pynetdrv.driver.service import NetworkService
from pynetdrv.errors import Conflict, Internal, InvalidParameter, PynetdrvError
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

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
        svc = NetworkService(store, dp, FakeFirewall(), FakeReserver())
        await svc.create_network(create_req())
        seen.append(next(iter(bridges(dp).values())))
        await svc.delete_network(nm.NetworkRef(NetworkID=NID))
    assert (seen[0].name, seen[0].mac) == (seen[1].name, seen[1].mac)
    other = FakeDataplane()
    await NetworkService(store, other, FakeFirewall(), FakeReserver()).create_network(
        create_req(NID2, v4=[("10.2.0.0/16", "10.2.0.1/16")]))
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


async def test_unknown_o_key_is_ignored_and_the_known_ones_apply(net: NetworkService, dp: FakeDataplane,
                                                                   store: SQLiteStore) -> None:
    await net.create_network(create_req(generic={"com.docker.network.driver.mtu": "1400", "mtu": "9000"}))
    (record,) = await store.list_networks()
    assert record.mtu == 1400
    assert next(iter(bridges(dp).values())).mtu == 1400


@pytest.mark.parametrize(("key", "value"), [
    ("com.docker.network.bridge.enable_icc", "maybe"),
    ("com.docker.network.bridge.enable_ip_masquerade", "yes"),
    ("com.docker.network.bridge.host_binding_ipv4", "fd00::1"),
    ("com.docker.network.bridge.host_binding_ipv4", "10.0.0.0/8"),
    ("com.docker.network.bridge.host_binding_ipv4", "localhost"),
])
async def test_invalid_value_of_a_known_key_is_refused_by_name(net: NetworkService, dp: FakeDataplane,
                                                              store: SQLiteStore, key: str, value: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        await net.create_network(create_req(generic={key: value}))
    assert key in str(e.value) and repr(value) in str(e.value)
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
    with pytest.raises(InvalidParameter, match=r"bridge.name"):
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


# DeleteNetwork ----------------------------------------------------------------------------------

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


# AllocateNetwork, capabilities ----------------------------------------------------------------------

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
