"""Cluster mode's logic over fakes of its two seams (tests/fakes/etcd.py for etcd, tests/fakes/vxlan.py
for the VXLAN kernel steps): two "hosts", each a NetworkService + IpamService on a ClusterStore with
its own SQLite, its member and registry, on ONE fake etcd.  What dockerd does on each host is
replayed as plugin calls; what the other host's VXLAN device holds is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from driver_requests import ep_req
from fake_cluster import Host, fake_cluster, until

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.cluster.errors import EtcdUnavailable
from pynetdrv.cluster.kv import KV, Snapshot, WatchEvent
from pynetdrv.dataplane.vxlan import VxlanNetwork
from pynetdrv.dataplane.vxlan_plan import LocalPort, RemoteEndpoint
from pynetdrv.errors import Conflict
from pynetdrv.registry.member import CLUSTER_OPTION, cluster_of
from pynetdrv.registry.view import RegistryView
from tests.fakes.etcd import FakeEtcd
from tests.fakes.vxlan import FakeDevice

N1 = "1" * 64  # Docker's ID of the network on host 1
N2 = "2" * 64  # ... of the same cluster network on host 2


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[FakeEtcd, Host, Host]]:
    async with fake_cluster() as hosts:
        yield hosts


def _has(h: Host, nid: str, ep: tuple[tuple[str, ...], str] | None, hosts: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        if nid not in h.vx.devices:
            return False
        eps, peers = h.remote(nid)
        return (ep in eps if ep else not eps) and peers == hosts
    return check


async def test_a_container_on_one_host_is_on_the_other_hosts_vxlan(cluster: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, h2 = cluster
    assert await h1.create(N1) == await h2.create(N2)
    ip = await h1.run(N1, "e" * 64)
    await until(_has(h2, N2, ((ip,), h1.addr), {h1.addr}), "host 2 has host 1's endpoint")
    await until(_has(h1, N1, None, {h2.addr}), "host 1 floods to host 2, knows no remote endpoint")
    d1, d2 = h1.vx.devices[N1], h2.vx.devices[N2]
    assert d1.vni == d2.vni and (d1.local, d2.local) == (h1.addr, h2.addr)
    # MTU: underlay 1500 - 50, on the record (bridge, veths) and the device
    rec = await h1.store.get_network(N1)
    assert rec is not None and rec.mtu == 1450 and d1.mtu == 1450
    assert h1.dp.links[rec.bridge].spec.mtu == 1450  # type: ignore[union-attr]
    # the container goes: its entries go from host 2
    await h1.net.delete_endpoint(nm.EndpointRef(NetworkID=N1, EndpointID="e" * 64))
    await until(_has(h2, N2, None, {h1.addr}), "host 2 forgot the endpoint")


async def test_the_vxlan_port_is_open_to_the_members_only_following_the_registry(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, h1, h2 = cluster
    both = (h1.addr, h2.addr)
    await until(lambda: bool(h1.guard.applied) and h1.guard.applied[-1] == both, "host 1 lets host 2 in")
    etcd.expire(h2.member.registry._lease.id)  # host 2 gone (for now)
    await etcd.notify()
    await until(lambda: (h1.addr,) in h1.guard.applied, "host 1 shut host 2 out while it was gone")
    await until(lambda: h1.guard.applied[-1] == both, "host 2 back: let in again")


async def test_mtu_option_wins_and_two_cluster_networks_get_two_vnis(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, h2 = cluster
    await h1.create(N1, "10.77.0.0/24", mtu=1400)
    await h1.create("3" * 64, "10.88.0.0/24")
    await h2.create(N2, "10.88.0.0/24")
    a, b = h1.vx.devices[N1], h1.vx.devices["3" * 64]
    assert a.mtu == 1400 and a.vni != b.vni and h2.vx.devices[N2].vni == b.vni
    ip = await h2.run(N2, "f" * 64, "local/10.88.0.0/24")
    await until(_has(h1, "3" * 64, ((ip,), h2.addr), {h2.addr}), "10.88 network has host 2's endpoint")
    assert h1.remote(N1) == (set(), set())  # the other cluster network hears nothing of it


async def test_overlapping_subnet_on_another_host_is_refused_and_changes_nothing(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, h2 = cluster
    await h1.create(N1)
    before = await h2.store.list_pools()
    with pytest.raises(Conflict, match=r"subnet 10\.77\.0\.0/23 overlaps cluster network 10\.77\.0\.0/24 "
                       r"\(VNI 1; used by host 192\.0\.2\.11\)"):
        await h2.create(N2, "10.77.0.0/23")
    assert await h2.store.list_pools() == before and await h2.store.list_networks() == []


async def test_etcd_down_keeps_the_data_plane_fails_allocation_naming_etcd_then_resumes(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, h1, h2 = cluster
    await h1.create(N1)
    await h2.create(N2)
    ip1 = await h1.run(N1, "e" * 64)
    await until(_has(h2, N2, ((ip1,), h1.addr), {h1.addr}), "before the outage")
    a = await h2.ipam.request_address(im.RequestAddressRequest(PoolID="local/10.77.0.0/24", Address=""))
    etcd.down = True
    await etcd.notify()
    with pytest.raises(EtcdUnavailable, match="etcd fake-etcd:2379 unavailable"):
        await h1.ipam.request_address(im.RequestAddressRequest(PoolID="local/10.77.0.0/24", Address=""))
    with pytest.raises(EtcdUnavailable):
        await h1.create("3" * 64, "10.99.0.0/24")
    assert await h1.store.get_network("3" * 64) is None
    # a container whose address was taken before the outage starts (CreateEndpoint needs no etcd)
    await h2.net.create_endpoint(ep_req("f" * 64, N2, a.Address))
    await asyncio.sleep(0.3)
    assert h2.remote(N2) == ({((ip1,), h1.addr)}, {h1.addr})  # entries kept through the outage
    etcd.down = False
    ip2 = a.Address.split("/")[0]
    await until(_has(h1, N1, ((ip2,), h2.addr), {h2.addr}), "host 2's endpoint published once etcd is back")
    await h1.ipam.request_address(im.RequestAddressRequest(PoolID="local/10.77.0.0/24", Address=""))


async def test_a_lost_lease_is_granted_again_and_the_records_put_again(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, h1, h2 = cluster
    await h1.create(N1)
    await h2.create(N2)
    ip = await h1.run(N1, "e" * 64)
    await until(_has(h2, N2, ((ip,), h1.addr), {h1.addr}), "published")
    etcd.expire(h1.member.registry._lease.id)
    await etcd.notify()
    await until(_has(h2, N2, None, set()), "host 1's records went with its lease")
    await until(_has(h2, N2, ((ip,), h1.addr), {h1.addr}), "host 1 put them again under a new lease")


async def test_a_compacted_history_is_read_again_in_full(cluster: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, h1, h2 = cluster
    await h1.create(N1)
    await h2.create(N2)
    ip = await h1.run(N1, "e" * 64)
    await until(_has(h2, N2, ((ip,), h1.addr), {h1.addr}), "published")
    etcd.down = True  # every watch breaks ...
    await etcd.notify()
    await asyncio.sleep(0.1)
    etcd.down = False  # ... and while they wait to watch again, the endpoint goes and history is compacted
    await etcd.delete(h1.pools.keys.endpoint(h1.addr, "e" * 64))
    etcd.compact()
    await until(_has(h2, N2, None, {h1.addr}), "host 2 read the registry again and dropped the endpoint")


async def test_network_rm_on_one_host_leaves_the_cluster_network_to_the_others(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, h2 = cluster
    pool = await h1.create(N1)
    await h2.create(N2)
    await until(_has(h2, N2, None, {h1.addr}), "host 2 floods to host 1")
    await h1.net.delete_network(nm.NetworkRef(NetworkID=N1))
    await h1.ipam.release_address(im.ReleaseAddressRequest(PoolID=pool, Address="10.77.0.1"))
    await h1.ipam.release_pool(im.PoolRef(PoolID=pool))
    assert N1 not in h1.vx.devices
    await until(_has(h2, N2, None, set()), "host 2 no longer floods to host 1")
    assert await h2.pools.users(pool) == {h2.addr: 1}
    kinds = {a.address: a.kind for a in await h2.store.allocations(pool)}
    assert kinds == {"10.77.0.1": "gateway"}  # the shared gateway stays for host 2


async def test_a_restart_rebuilds_the_device_from_the_local_record_without_etcd(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, h1, _ = cluster
    await h1.create(N1)
    rec = await h1.store.get_network(N1)
    assert rec is not None and cluster_of(rec) == ("local/10.77.0.0/24", 1)
    assert rec.options[CLUSTER_OPTION] == {"network": "local/10.77.0.0/24", "vni": 1}
    etcd.down = True
    h1.vx.devices.clear()  # the host rebooted: no device
    await h1.member.sync_all()
    assert h1.vx.devices[N1].vni == 1


async def test_a_sync_during_a_network_create_leaves_the_half_made_device_alone(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    """The create stores the record, then makes the device; a sync (any registry change starts one)
    that ran in between deleted the unmarked device as a dead run's leftover, failing the create."""
    _, h1, _ = cluster
    h1.vx.mark_delay = 0.1
    create = asyncio.create_task(h1.create(N1))
    await until(lambda: N1 in h1.vx.making, "the create is making the device")
    assert await h1.store.get_network(N1) is not None  # the sync sees the network
    await h1.member.sync_all()
    await create
    assert h1.vx.devices[N1].marked and h1.vx.devices[N1].vni == 1


async def test_the_sync_keeps_off_a_network_while_the_driver_changes_it(cluster: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, _ = cluster
    await h1.create(N1)
    rec = await h1.store.get_network(N1)
    assert rec is not None
    async with h1.member.changing(N1):
        await h1.member.network_gone(rec)  # a delete's first step: the record is still stored
        await h1.member.sync_all()
        assert N1 not in h1.vx.devices  # not made again for a network half gone
    # that delete failed later and kept the record: the sync after it puts the device back
    await until(lambda: N1 in h1.vx.devices, "the device is back once the driver is done")


async def test_a_start_removes_vxlan_devices_of_no_stored_network(cluster: tuple[FakeEtcd, Host, Host]) -> None:
    """A device outliving its network (a crash, a bug) holds its VNI: a new network with it fails."""
    etcd, h1, _ = cluster
    await h1.create(N1)
    h3 = Host(etcd, "192.0.2.13", local=h1.local)  # host 1's daemon restarted, on its state
    orphan = "9" * 64
    h3.vx.devices = {N1: h1.vx.devices[N1],
                     orphan: FakeDevice(VxlanNetwork(orphan, "pnbr-gone"), 2, "192.0.2.13", 4789, 1450)}
    await h3.member.start()
    try:
        assert set(h3.vx.devices) == {N1}
    finally:
        await h3.member.stop()


async def test_the_fast_path_follows_the_containers_here_and_there_except_on_icc_off_networks(
        cluster: tuple[FakeEtcd, Host, Host]) -> None:
    _, h1, h2 = cluster
    await h1.create(N1)
    await h2.create(N2)
    ip1, ip2 = await h1.run(N1, "e" * 64), await h2.run(N2, "f" * 64)
    (ep1,) = await h1.store.list_endpoints(N1)
    here = (LocalPort(ep1.host_ifname, (ip1,)),)
    await until(lambda: h1.vx.fast.get(N1) == (here, (ip2,)), "host 1: its container, redirects to host 2's")
    await h2.net.delete_endpoint(nm.EndpointRef(NetworkID=N2, EndpointID="f" * 64))
    await until(lambda: h1.vx.fast.get(N1) == (here, ()), "host 2's container gone from host 1's fast path")
    # enable_icc=false: containers are kept apart by iptables rules on the bridge, which a fast path skips
    n3, n4 = "3" * 64, "4" * 64
    await h1.create(n3, "10.88.0.0/24", icc=False)
    await h2.create(n4, "10.88.0.0/24", icc=False)
    await h1.run(n3, "a" * 64, "local/10.88.0.0/24")
    ip4 = await h2.run(n4, "b" * 64, "local/10.88.0.0/24")
    await until(_has(h1, n3, ((ip4,), h2.addr), {h2.addr}), "host 1 has host 2's endpoint")
    assert h1.vx.fast.get(n3, ((), ())) == ((), ())
    await h1.net.delete_network(nm.NetworkRef(NetworkID=N1))
    assert N1 not in h1.vx.fast


async def test_no_fast_path_when_turned_off(cluster: tuple[FakeEtcd, Host, Host]) -> None:
    etcd, _, h2 = cluster
    h3 = Host(etcd, "192.0.2.13", fast_path=False)
    await h3.local.open()
    await h3.member.start()
    try:
        await h3.create("3" * 64)
        await h2.create(N2)
        await h3.run("3" * 64, "e" * 64)
        ip2 = await h2.run(N2, "f" * 64)
        await until(_has(h3, "3" * 64, ((ip2,), h2.addr), {h2.addr}), "host 3 has host 2's endpoint")
        assert h3.vx.fast.get("3" * 64, ((), ())) == ((), ())
        assert h2.vx.fast[N2][1] == ("10.77.0.2",)  # host 2 has one, to host 3's container
    finally:
        await h3.member.stop()
        await h3.store.close()


def test_registry_view_ignores_malformed_records_and_orphan_endpoints() -> None:
    view = RegistryView(b"/p/reg/")
    ep = b'{"network": "n", "mac": "02:00:00:00:00:01", "ips": ["10.0.0.2"], "vtep": "192.0.2.9"}'
    view.replace(Snapshot(5, (KV(b"/p/reg/hosts/h1", b"not json", 1, 1, 1),
                              KV(b"/p/reg/endpoints/h9/e1", ep, 2, 2, 1),
                              KV(b"/p/reg/hosts/h2", b'{"vtep": "192.0.2.2", "networks": ["n"]}', 3, 3, 1))))
    assert set(view.hosts) == {"h2"}
    assert view.remote("n", "h1").endpoints == ()  # h9 has no host record (its lease is gone)
    assert view.remote("n", "h1").vteps == ("192.0.2.2",) and view.members() == ("192.0.2.2",)
    view.apply(WatchEvent("delete", 6, KV(b"/p/reg/hosts/h2", b"", 3, 6, 0)))
    assert view.users("n") == () and view.revision == 6
    assert RemoteEndpoint("02:00:00:00:00:01", ("10.0.0.2",), "192.0.2.9")  # the shape sync takes
