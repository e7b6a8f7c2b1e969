"""Cluster mode end to end below Docker: two simulated hosts (namespaces on an underlay switch, the
``Lab`` of test_netns_vxlan), each with the real parts pynetdrv serve uses in cluster mode (netlink
dataplane, VXLAN dataplane, iptables firewall and VXLAN guard, ClusterStore on a real etcd with its
own SQLite) driven by dockerd's calls; containers are namespaces holding the endpoints' veth peers.
The registry alone wires the hosts: no test code touches an FDB or neighbour entry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from netns_util import in_netns, ping, throwaway_netns
from test_netns_vxlan import Host, Lab

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.firewall.iptables import IptablesFirewall
from pynetdrv.firewall.vxlan_guard import VxlanGuard
from pynetdrv.ipam.service import IpamService
from pynetdrv.ports.reserver import SocketReserver
from pynetdrv.registry.member import ClusterMember
from pynetdrv.registry.registry import Registry
from pynetdrv.store.cluster import ClusterPools, ClusterStore
from pynetdrv.store.etcd_shared import EtcdSharedStore
from pynetdrv.store.sqlite import SQLiteStore
from tests.unit.etcd.etcd_server import EtcdServer, ensure_etcd_binary

GW = {im.REQUEST_ADDRESS_TYPE: im.GATEWAY_TYPE}
SUBNET, SUBNET6 = "10.177.0.0/24", "fd00:177::/64"


class Node:
    """One host's pynetdrv in cluster mode, in-process, its kernel parts aimed at the host's namespace."""

    def __init__(self, host: Host, client: EtcdClient) -> None:
        self.host = host
        self.local = SQLiteStore(":memory:")
        self.pools = ClusterPools(EtcdSharedStore(client, b"/netns-cluster/"), host.vtep)
        self.store = ClusterStore(self.local, self.pools)
        self.fw = IptablesFirewall(netns=host.ns, instance="pndt")
        self.member = ClusterMember(
            host.vx, self.store, self.pools,
            lambda loc, ch: Registry(client, self.pools.keys, host.vtep, loc, ch, ttl=3),
            host.vtep, 4789, VxlanGuard(self.fw, 4789))
        self.net = NetworkService(self.store, host.dp, self.fw, SocketReserver(), self.member)
        self.ipam = IpamService(self.store, Config(), host.dp.host_routes)

    async def create(self, nid: str) -> None:
        """``docker network create --ipv6 --subnet SUBNET --subnet SUBNET6``."""
        data: dict[int, list[nm.IPAMData]] = {4: [], 6: []}
        for family, subnet in ((4, SUBNET), (6, SUBNET6)):
            p = await self.ipam.request_pool(im.RequestPoolRequest(AddressSpace="local", Pool=subnet))
            gw = await self.ipam.request_address(im.RequestAddressRequest(PoolID=p.PoolID, Address="", Options=GW))
            data[family].append(nm.IPAMData(AddressSpace="local", Pool=subnet, Gateway=gw.Address))
        await self.net.create_network(nm.CreateNetworkRequest(
            NetworkID=nid, Options={"com.docker.network.enable_ipv6": True, "com.docker.network.generic": {}},
            IPv4Data=data[4], IPv6Data=data[6]))

    async def run(self, ns: str, nid: str, eid: str) -> tuple[str, str, str]:
        """A container: addresses, endpoint, its veth peer moved into a namespace of its own as eth0."""
        a4 = (await self.ipam.request_address(im.RequestAddressRequest(PoolID=f"local/{SUBNET}"))).Address
        a6 = (await self.ipam.request_address(im.RequestAddressRequest(PoolID=f"local/{SUBNET6}"))).Address
        await self.net.create_endpoint(nm.CreateEndpointRequest(
            NetworkID=nid, EndpointID=eid, Interface=nm.EndpointInterface(Address=a4, AddressIPv6=a6), Options={}))
        ep = await self.store.get_endpoint(eid)
        assert ep is not None
        ipr = self.host.ipr
        (idx,) = await ipr.link_lookup(ifname=ep.peer_ifname)
        await ipr.link("set", index=idx, net_ns_fd=ns)
        for cmd in (["ip", "link", "set", ep.peer_ifname, "name", "eth0"], ["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", a4, "dev", "eth0"], ["ip", "addr", "add", a6, "dev", "eth0", "nodad"],
                    ["ip", "link", "set", "eth0", "up"]):
            done = in_netns(ns, *cmd)
            assert done.returncode == 0, done.stderr
        return ns, a4.split("/")[0], a6.split("/")[0]


def _mtu(ns: str, ifname: str) -> int:
    words = in_netns(ns, "ip", "-o", "link", "show", ifname).stdout.split()
    return int(words[words.index("mtu") + 1])


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def etcd(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    server = EtcdServer(ensure_etcd_binary(), tmp_path / "etcd", "netns-cluster")
    server.start()
    try:
        yield server  # type: ignore[misc]
    finally:
        server.stop()


async def test_two_hosts_one_network_fed_by_the_registry_and_guarded(etcd: EtcdServer) -> None:
    async with AsyncExitStack() as stack:
        lab = Lab(stack)
        await lab.start(2)
        # pyroute2 forks to make a namespace or a socket in one: all of that before gRPC starts its threads
        # (a fork while they run can crash the child)
        containers = [stack.enter_context(throwaway_netns()) for _ in lab.hosts]
        for h in lab.hosts:
            await h.vx.list_vxlan_state()
            await h.dp.owned_links()
            await h.dp._rtnl.off_loop(lambda ipr: None)  # the worker thread's own socket (link deletions)
            await h.vx._rtnl.off_loop(lambda ipr: None)
            await h.vx.underlay_mtu(h.vtep)
        client = await stack.enter_async_context(EtcdClient.from_url(f"etcd://{etcd.endpoint}", timeout=5))
        nodes = [Node(h, client) for h in lab.hosts]
        for n in nodes:
            await n.local.open()
            stack.push_async_callback(n.local.close)
            await n.member.start()
            stack.push_async_callback(n.member.stop)
            stack.push_async_callback(n.fw.remove_all)
        await nodes[0].create("1" * 64)
        await nodes[1].create("2" * 64)
        c1 = await nodes[0].run(containers[0], "1" * 64, "a" * 64)
        c2 = await nodes[1].run(containers[1], "2" * 64, "b" * 64)
        assert c1[1] != c2[1] and c1[2] != c2[2]
        await until(lambda: ping(c1[0], c2[1]), "host 1's container pings host 2's over IPv4")
        assert ping(c2[0], c1[2]) and ping(c1[0], "10.177.0.1")  # IPv6 across; the shared gateway, locally
        assert _mtu(c1[0], "eth0") == _mtu(lab.hosts[0].ns, "ul0") - 50
        rules = in_netns(lab.hosts[0].ns, "iptables", "-S", "PNDT-VXLAN-IN").stdout
        assert f"-A PNDT-VXLAN-IN -s {lab.hosts[1].vtep}/32 -j ACCEPT" in rules and "-j DROP" in rules
        # the container on host 2 goes: host 1's VXLAN device no longer knows it, traffic stops
        await nodes[1].net.delete_endpoint(nm.EndpointRef(NetworkID="2" * 64, EndpointID="b" * 64))
        out = ""

        def forgotten() -> bool:
            nonlocal out
            out = in_netns(lab.hosts[0].ns, "ip", "neigh", "show", "proxy").stdout + in_netns(
                lab.hosts[0].ns, "bridge", "fdb", "show").stdout
            return c2[1] not in in_netns(lab.hosts[0].ns, "ip", "neigh", "show").stdout
        await until(forgotten, f"host 1 forgot host 2's container ({out})")
