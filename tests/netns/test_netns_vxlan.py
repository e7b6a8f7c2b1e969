"""The VXLAN data plane (pynetdrv.dataplane.vxlan) between simulated hosts.

Every "host" is a throwaway network namespace with an underlay veth to a
switch namespace (a plain bridge), 192.168.250.1N/24 (and fd00:250::1N/64);
pynetdrv's own bridge and VXLAN device in it are made by the code under test,
and each "container" is another namespace holding a veth peer on its host's
bridge.  All traffic stays between these namespaces; all of them are removed
when the test ends, whatever happens.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from counting_ipr import CountingIPRoute
from netns_util import in_netns, ping, throwaway_netns
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl.ndmsg import NTF_SELF, states

from pynetdrv.dataplane.base import BridgeSpec, DataplaneError, ForeignLinkError, VethSpec, birth_mac
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.dataplane.vxlan import (
    NEIGH_PROTOCOL,
    RemoteEndpoint,
    VxlanDataplane,
    VxlanNetwork,
    vxlan_alias,
)
from pynetdrv.dataplane.vxlan_plan import ZERO_MAC, FdbEntry, ForeignEntryError, NeighEntry, VxlanInputError
from pynetdrv.driver.naming import bridge_name, derived_mac
from pynetdrv.firewall.render import restore_text
from pynetdrv.firewall.vxlan_rules import render_vxlan_input

NODAD = 0x02
NET_A, NET_B = "a1" * 32, "b2" * 32
UDP_TOOL = r"""
import socket, sys, time
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "recv":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(float(sys.argv[4]))
    print("ready", flush=True)
    try:
        data, peer = s.recvfrom(65535)
    except OSError:
        sys.exit(1)
    print(len(data), data[:16].decode(), flush=True)
else:
    size, count = int(sys.argv[4]), int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: never fragment locally
    for _ in range(count):
        s.sendto(b"vxlan-test-token".ljust(size, b"."), (addr, port))
        time.sleep(0.1)
"""


@dataclass(eq=False)
class Host:
    ns: str
    vtep: str
    vtep6: str
    ipr: AsyncIPRoute
    dp: NetlinkDataplane
    vx: VxlanDataplane


@dataclass(eq=False)
class Container:
    ns: str
    host: Host
    ip: str
    ip6: str
    mac: str
    ifname: str

    def endpoint(self, vtep6: bool = False) -> RemoteEndpoint:
        return RemoteEndpoint(self.mac, (self.ip, self.ip6), self.host.vtep6 if vtep6 else self.host.vtep)


@dataclass
class Lab:
    stack: AsyncExitStack
    hosts: list[Host] = field(default_factory=list)
    sw: str = ""
    _veths: int = 0

    def _socket(self, ns: str) -> AsyncIPRoute:
        ipr = AsyncIPRoute(netns=ns)
        self.stack.callback(ipr.close)
        return ipr

    async def start(self, count: int) -> None:
        self.sw = self.stack.enter_context(throwaway_netns())
        sw = self._socket(self.sw)
        await _lo_up(sw)
        await sw.link("add", ifname="sw0", kind="bridge")
        (sw0,) = await sw.link_lookup(ifname="sw0")
        await sw.link("set", index=sw0, state="up")
        for n in range(1, count + 1):
            ns = self.stack.enter_context(throwaway_netns())
            ipr = self._socket(ns)
            await _lo_up(ipr)
            await ipr.link("add", ifname="ul0", kind="veth", peer={"ifname": f"swp{n}"})
            (peer,) = await ipr.link_lookup(ifname=f"swp{n}")
            await ipr.link("set", index=peer, net_ns_fd=self.sw)
            (port,) = await sw.link_lookup(ifname=f"swp{n}")
            await sw.link("set", index=port, master=sw0, state="up")
            (ul0,) = await ipr.link_lookup(ifname="ul0")
            vtep, vtep6 = f"192.168.250.1{n}", f"fd00:250::1{n}"
            await ipr.addr("add", index=ul0, address=vtep, prefixlen=24)
            await ipr.addr("add", index=ul0, address=vtep6, prefixlen=64, flags=NODAD)
            await ipr.link("set", index=ul0, state="up")
            dp, vx = NetlinkDataplane(netns=ns), VxlanDataplane(netns=ns)
            self.stack.push_async_callback(dp.close)
            self.stack.push_async_callback(vx.close)
            self.hosts.append(Host(ns, vtep, vtep6, ipr, dp, vx))

    async def network(self, host: Host, network_id: str, vni: int, local6: bool = False,
                      mtu: int | None = None) -> VxlanNetwork:
        """The network's bridge (gateway .1 on every host) and VXLAN device."""
        bridge = bridge_name(network_id)
        await host.dp.ensure_bridge(BridgeSpec(bridge, network_id, derived_mac(network_id), None,
                                               ("10.77.0.1/24", "fd77::1/64")))
        net = VxlanNetwork(network_id, bridge)
        assert await host.vx.ensure_vxlan(net, vni, host.vtep6 if local6 else host.vtep, mtu=mtu) is True
        return net

    async def container(self, host: Host, net: VxlanNetwork, n: int, mtu: int | None = None) -> Container:
        self._veths += 1
        eid = hashlib.sha256(f"{host.ns}-{n}-{self._veths}".encode()).hexdigest()
        spec = VethSpec(host_name=f"pnve{self._veths}", peer_name=f"pnvc{self._veths}", bridge=net.bridge,
                        endpoint_id=eid, mac=derived_mac(eid), mtu=mtu)
        await host.dp.ensure_veth(spec)
        ns = self.stack.enter_context(throwaway_netns())
        (idx,) = await host.ipr.link_lookup(ifname=spec.peer_name)
        await host.ipr.link("set", index=idx, net_ns_fd=ns)
        ipr = self._socket(ns)
        await _lo_up(ipr)
        (idx,) = await ipr.link_lookup(ifname=spec.peer_name)
        ip, ip6 = f"10.77.0.{n}", f"fd77::{n}"
        await ipr.addr("add", index=idx, address=ip, prefixlen=24)
        await ipr.addr("add", index=idx, address=ip6, prefixlen=64, flags=NODAD)
        await ipr.link("set", index=idx, state="up")
        return Container(ns, host, ip, ip6, spec.mac, spec.peer_name)

    async def wire(self, nets: dict[Host, VxlanNetwork], containers: list[Container], flood: bool = True,
                   vtep6: bool = False) -> None:
        """On every host: entries for the other hosts' containers (and flood
        entries for the other hosts), by sync."""
        for host, net in nets.items():
            others = [c.endpoint(vtep6) for c in containers if c.host is not host]
            peers = [(h.vtep6 if vtep6 else h.vtep) for h in nets if h is not host] if flood else []
            await host.vx.sync(net, others, peers)

    def udp_receiver(self, c: Container, addr: str, port: int, wait: float = 3.0) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{c.ns}", sys.executable, "-c", UDP_TOOL, "recv",
                                 addr, str(port), str(wait)], stdout=subprocess.PIPE, text=True)
        self.stack.callback(_stop, proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def udp_send(c: Container, addr: str, port: int, size: int = 64, count: int = 3) -> subprocess.CompletedProcess[str]:
    return in_netns(c.ns, sys.executable, "-c", UDP_TOOL, "send", addr, str(port), str(size), str(count))


def restore(ns: str, tool: str, text: str) -> None:
    done = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", f"{tool}-restore", "-w", "--noflush"],
                          input=text, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def received(proc: subprocess.Popen[str]) -> str | None:
    """What the receiver got ("LEN TOKEN"), None if nothing came."""
    out, _ = proc.communicate(timeout=10)
    return out.strip() if proc.returncode == 0 else None


async def _lo_up(ipr: AsyncIPRoute) -> None:
    (lo,) = await ipr.link_lookup(ifname="lo")
    await ipr.link("set", index=lo, state="up")


async def kernel_entries(ipr: AsyncIPRoute, device: str) -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    """Every self FDB entry (mac, dst, flags) and neighbour (ip, mac, protocol)
    on ``device``, read with pyroute2 directly (not through the code under test)."""
    (index,) = await ipr.link_lookup(ifname=device)
    fdb = {((m.get_attr("NDA_LLADDR") or "").lower(), m.get_attr("NDA_DST"), m["flags"])
           async for m in await ipr.fdb("dump", ifindex=index) if m["ifindex"] == index and m["flags"] & NTF_SELF}
    neigh = {(m.get_attr("NDA_DST"), (m.get_attr("NDA_LLADDR") or "").lower(), m.get_attr("NDA_PROTOCOL") or 0)
             async for m in await ipr.neigh("dump", ifindex=index)
             if m["ifindex"] == index and not ipaddress.ip_address(m.get_attr("NDA_DST")).is_multicast}
    return fdb, neigh


async def device(ipr: AsyncIPRoute, name: str) -> dict[str, object]:
    (msg,) = await ipr.link("get", ifname=name)
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    return {"index": msg["index"], "vni": data.get_attr("IFLA_VXLAN_ID"), "port": data.get_attr("IFLA_VXLAN_PORT"),
            "local": data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6"),
            "learning": data.get_attr("IFLA_VXLAN_LEARNING"), "proxy": data.get_attr("IFLA_VXLAN_PROXY"),
            "master": msg.get_attr("IFLA_MASTER"), "up": bool(msg["flags"] & 1), "mtu": msg.get_attr("IFLA_MTU"),
            "alias": msg.get_attr("IFLA_IFALIAS")}


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    async with AsyncExitStack() as stack:
        yield Lab(stack)


async def three_hosts(lab: Lab) -> tuple[dict[Host, VxlanNetwork], list[Container]]:
    await lab.start(3)
    nets = {h: await lab.network(h, NET_A, 100) for h in lab.hosts}
    containers = [await lab.container(h, nets[h], 11 + i) for i, h in enumerate(lab.hosts)]
    return nets, containers


# -- traffic -------------------------------------------------------------------


async def test_containers_reach_each_other_across_three_hosts(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    # From a container used for nothing else: a failed ARP attempt of its own
    # could still be in progress when the entries arrive.
    probe = await lab.container(c3.host, nets[c3.host], 31)
    assert not ping(probe.ns, c2.ip), "reachable before any entry: the test would prove nothing"
    await lab.wire(nets, [c1, c2, c3])
    for a, b in ((c1, c2), (c1, c3), (c2, c3), (c3, c1)):
        assert ping(a.ns, b.ip), f"{a.ip} -> {b.ip}"
        assert ping(a.ns, b.ip6), f"{a.ip6} -> {b.ip6}"
    # The gateway is the same address on every host, answered by the local bridge.
    assert ping(c2.ns, "10.77.0.1") and ping(c2.ns, "fd77::1")


async def test_arp_and_nd_are_answered_by_the_proxy_without_flooding(lab: Lab) -> None:
    nets, (c1, c2, _) = await three_hosts(lab)
    # No flood entries at all: an ARP request or neighbour solicitation that
    # went into the tunnel would reach nobody, so the answers are the proxy's.
    await lab.wire(nets, [c1, c2], flood=False)
    assert ping(c1.ns, c2.ip) and ping(c1.ns, c2.ip6) and ping(c2.ns, c1.ip)


async def test_without_its_neighbour_entry_an_address_is_not_resolved_even_with_flooding(lab: Lab) -> None:
    nets, (c1, c2, _) = await three_hosts(lab)
    h1 = c1.host
    await lab.wire(nets, [c1, c2], flood=True)
    (vx,) = await h1.ipr.link_lookup(ifname=nets[h1].ifname)
    await h1.ipr.neigh("del", ifindex=vx, dst=c2.ip)  # host 1 forgets c2's IPv4 neighbour entry only
    assert not ping(c1.ns, c2.ip), "resolved without the neighbour entry: the proxy is not what answers"
    assert ping(c1.ns, c2.ip6)
    assert await h1.vx.sync(nets[h1], [c2.endpoint()], [h.vtep for h in nets if h is not h1]) == 1
    # c1's own failed ARP attempt for c2 may still be in progress: start afresh.
    c1ipr = AsyncIPRoute(netns=c1.ns)
    try:
        (eth,) = await c1ipr.link_lookup(ifname=c1.ifname)
        await c1ipr.neigh("del", ifindex=eth, dst=c2.ip)
    finally:
        c1ipr.close()
    assert ping(c1.ns, c2.ip)


async def test_broadcast_reaches_exactly_the_peer_hosts_with_flood_entries(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    await lab.wire(nets, [c1, c2, c3])
    r2, r3 = lab.udp_receiver(c2, "0.0.0.0", 7001), lab.udp_receiver(c3, "0.0.0.0", 7001)
    assert udp_send(c1, "10.77.0.255", 7001).returncode == 0
    assert received(r2) == "64 vxlan-test-token" and received(r3) == "64 vxlan-test-token"
    # Host 3 leaves host 1's flood list: broadcasts from host 1 reach host 2 only.
    assert await c1.host.vx.remove_peer_host(nets[c1.host], c3.host.vtep) == 1
    r2, r3 = lab.udp_receiver(c2, "0.0.0.0", 7002), lab.udp_receiver(c3, "0.0.0.0", 7002, wait=2.0)
    assert udp_send(c1, "10.77.0.255", 7002).returncode == 0
    assert received(r2) == "64 vxlan-test-token"
    assert received(r3) is None
    # Unicast to host 3 still works: its own FDB and neighbour entries remain.
    assert ping(c1.ns, c3.ip)


async def test_sync_removes_stale_entries_and_traffic_follows(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    h1, net = c1.host, nets[c1.host]
    await lab.wire(nets, [c1, c2, c3])
    assert ping(c1.ns, c2.ip) and ping(c1.ns, c3.ip)
    # c3 is gone from the wanted set on host 1, and so is host 3.
    assert await h1.vx.sync(net, [c2.endpoint()], [c2.host.vtep]) == 1 + 2 + 1  # FDB, 2 neighbours, flood
    fdb, neigh = await kernel_entries(h1.ipr, net.ifname)
    assert {(mac, dst) for mac, dst, _ in fdb} == {(c2.mac, c2.host.vtep), (ZERO_MAC, c2.host.vtep)}
    assert {ip for ip, _, _ in neigh} == {c2.ip, c2.ip6}
    assert ping(c1.ns, c2.ip) and not ping(c1.ns, c3.ip6)
    # Empty wanted set: nothing of ours is left.
    assert await h1.vx.sync(net, [], []) == 4
    assert await kernel_entries(h1.ipr, net.ifname) == (set(), set())
    assert not ping(c1.ns, c2.ip6)


async def test_an_endpoint_that_moved_host_is_followed(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    await lab.wire(nets, [c1, c2])
    assert ping(c1.ns, c2.ip)
    # c2's MAC and IPs "move" to host 3 (say, the container was started again there).
    moved = RemoteEndpoint(c2.mac, (c2.ip, c2.ip6), c3.host.vtep)
    assert await c1.host.vx.sync(nets[c1.host], [moved], [c2.host.vtep, c3.host.vtep]) == 1  # one replace
    fdb, _ = await kernel_entries(c1.host.ipr, nets[c1.host].ifname)
    assert {(m, d) for m, d, _ in fdb if m == c2.mac} == {(c2.mac, c3.host.vtep)}


async def test_networks_with_different_vnis_do_not_reach_each_other(lab: Lab) -> None:
    await lab.start(2)
    h1, h2 = lab.hosts
    a = {h: await lab.network(h, NET_A, 100) for h in lab.hosts}
    b2net = await lab.network(h2, NET_B, 200)
    a1, a2 = await lab.container(h1, a[h1], 11), await lab.container(h2, a[h2], 12)
    b2 = await lab.container(h2, b2net, 22)
    # Host 1's network A is told b2 is on host 2, and network B on host 2 is told of a1:
    # the frames do arrive at host 2, but in VNI 100, which only network A's device takes.
    await h1.vx.sync(a[h1], [a2.endpoint(), b2.endpoint()], [h2.vtep])
    await h2.vx.sync(a[h2], [a1.endpoint()], [h1.vtep])
    await h2.vx.sync(b2net, [a1.endpoint()], [h1.vtep])
    assert ping(a1.ns, a2.ip), "same VNI: reachable"
    assert not ping(a1.ns, b2.ip) and not ping(b2.ns, a1.ip), "different VNIs reached each other"
    # One VNI per network: a second device with VNI 100 on the same port is refused by name.
    b1bridge = bridge_name(NET_B)
    await h1.dp.ensure_bridge(BridgeSpec(b1bridge, NET_B, derived_mac(NET_B), None, ()))
    with pytest.raises(DataplaneError, match=f"VNI 100 on UDP port 4789 is already used by {a[h1].ifname}"):
        await h1.vx.ensure_vxlan(VxlanNetwork(NET_B, b1bridge), 100, h1.vtep)
    assert not await h1.ipr.link_lookup(ifname=VxlanNetwork(NET_B, b1bridge).ifname)


async def test_ipv6_underlay(lab: Lab) -> None:
    await lab.start(2)
    nets = {h: await lab.network(h, NET_A, 300, local6=True) for h in lab.hosts}
    c1, c2 = [await lab.container(h, nets[h], 11 + i) for i, h in enumerate(lab.hosts)]
    await lab.wire(nets, [c1, c2], vtep6=True)
    assert ping(c1.ns, c2.ip) and ping(c2.ns, c1.ip6)
    (state,) = await c1.host.vx.list_vxlan_state()
    assert state.local == c1.host.vtep6 and state.mtu == 1500 - 70
    assert FdbEntry(c2.mac, c2.host.vtep6) in state.fdb and FdbEntry(ZERO_MAC, c2.host.vtep6) in state.fdb


async def test_mtu_is_the_underlays_minus_the_encapsulation_unless_given(lab: Lab) -> None:
    await lab.start(2)
    h1, h2 = lab.hosts
    nets = {h: await lab.network(h, NET_A, 100) for h in lab.hosts}
    assert (await device(h1.ipr, nets[h1].ifname))["mtu"] == 1450
    c1, c2 = await lab.container(h1, nets[h1], 11, mtu=1450), await lab.container(h2, nets[h2], 12, mtu=1450)
    await lab.wire(nets, [c1, c2])
    # A full-size datagram (1450 - 20 IP - 8 UDP), never fragmented, arrives.
    r2 = lab.udp_receiver(c2, c2.ip, 7003)
    assert udp_send(c1, c2.ip, 7003, size=1422, count=1).returncode == 0
    assert received(r2) == "1422 vxlan-test-token"
    # Jumbo underlay: followed on the next ensure; an explicit MTU wins.
    (ul0,) = await h1.ipr.link_lookup(ifname="ul0")
    await h1.ipr.link("set", index=ul0, mtu=9000)
    assert await h1.vx.ensure_vxlan(nets[h1], 100, h1.vtep) is False
    assert (await device(h1.ipr, nets[h1].ifname))["mtu"] == 8950
    assert await h1.vx.ensure_vxlan(nets[h1], 100, h1.vtep, mtu=1400) is False
    assert (await device(h1.ipr, nets[h1].ifname))["mtu"] == 1400
    with pytest.raises(VxlanInputError, match="MTU 40"):
        await h1.vx.ensure_vxlan(nets[h1], 100, h1.vtep, mtu=40)
    assert (await device(h1.ipr, nets[h1].ifname))["mtu"] == 1400


# -- the device: idempotence, repair, ownership ------------------------------------


async def test_ensure_twice_gives_one_set_of_entries(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    h1, net = c1.host, nets[c1.host]
    before = await device(h1.ipr, net.ifname)
    assert await h1.vx.ensure_vxlan(net, 100, h1.vtep) is False
    assert await device(h1.ipr, net.ifname) == before
    assert before["vni"] == 100 and before["port"] == 4789 and before["learning"] == 0 and before["proxy"] == 1
    assert before["up"] and before["alias"] == vxlan_alias(NET_A)
    for _ in range(2):
        await h1.vx.ensure_remote_endpoint(net, c2.endpoint())
        await h1.vx.ensure_peer_host(net, c2.host.vtep)
    once = await kernel_entries(h1.ipr, net.ifname)
    assert await h1.vx.ensure_remote_endpoint(net, c2.endpoint()) == 0
    assert await h1.vx.ensure_peer_host(net, c2.host.vtep) == 0
    fdb, neigh = once
    assert {(m, d) for m, d, _ in fdb} == {(c2.mac, c2.host.vtep), (ZERO_MAC, c2.host.vtep)}
    assert neigh == {(c2.ip, c2.mac, NEIGH_PROTOCOL), (c2.ip6, c2.mac, NEIGH_PROTOCOL)}
    wanted = ([c2.endpoint(), c3.endpoint()], [c2.host.vtep, c3.host.vtep])
    assert await h1.vx.sync(net, *wanted) == 1 + 2 + 1  # c3: FDB + 2 neighbours; host 3: flood
    assert await h1.vx.sync(net, *wanted) == 0
    assert await h1.vx.remove_remote_endpoint(net, c3.endpoint()) == 3
    assert await h1.vx.remove_remote_endpoint(net, c3.endpoint()) == 0
    assert await h1.vx.remove_peer_host(net, c3.host.vtep) == 1
    assert await h1.vx.remove_peer_host(net, c3.host.vtep) == 0
    assert await kernel_entries(h1.ipr, net.ifname) == once
    await h1.vx.remove_vxlan(net)
    await h1.vx.remove_vxlan(net)
    assert not await h1.ipr.link_lookup(ifname=net.ifname)
    assert await h1.vx.list_vxlan_state() == []


async def test_sync_reads_twice_and_writes_once(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    await lab.wire(nets, [c1, c2, c3])
    await c1.host.vx.sync(nets[c1.host], [], [])  # host 1 starts from nothing; the others know c1
    journal: list[list[str]] = []
    vx = VxlanDataplane(netns=c1.host.ns, socket_factory=functools.partial(CountingIPRoute, journal=journal))
    lab.stack.push_async_callback(vx.close)
    wanted = ([c2.endpoint(), c3.endpoint()], [c2.host.vtep, c3.host.vtep])
    assert await vx.sync(nets[c1.host], *wanted) == 2 + 4 + 2
    # getlink (the device), RTM_GETNEIGH dumps of FDB and neighbours, then one send of 8 RTM_NEWNEIGH.
    assert journal == [["getlink"], ["30"], ["30"], ["28"] * 8]
    journal.clear()
    assert await vx.sync(nets[c1.host], *wanted) == 0
    assert journal == [["getlink"], ["30"], ["30"]]
    assert ping(c1.ns, c3.ip)


@pytest.mark.parametrize("wrong", ["vni", "port", "local", "learning"])
async def test_a_wrong_device_of_ours_is_made_again(lab: Lab, wrong: str) -> None:
    await lab.start(2)
    h1, h2 = lab.hosts
    bridge = bridge_name(NET_A)
    await h1.dp.ensure_bridge(BridgeSpec(bridge, NET_A, derived_mac(NET_A), None, ("10.77.0.1/24",)))
    net = VxlanNetwork(NET_A, bridge)
    (ul0,) = await h1.ipr.link_lookup(ifname="ul0")
    await h1.ipr.addr("add", index=ul0, address="192.168.250.111", prefixlen=24)
    attrs = {"vxlan_id": 100, "vxlan_port": 4789, "vxlan_local": h1.vtep, "vxlan_learning": 0, "vxlan_proxy": 1}
    attrs.update({"vni": {"vxlan_id": 999}, "port": {"vxlan_port": 4790}, "local": {"vxlan_local": "192.168.250.111"},
                  "learning": {"vxlan_learning": 1}}[wrong])
    await h1.ipr.link("add", ifname=net.ifname, kind="vxlan", **attrs)
    (index,) = await h1.ipr.link_lookup(ifname=net.ifname)
    await h1.ipr.link("set", index=index, ifalias=vxlan_alias(NET_A))
    assert await h1.vx.ensure_vxlan(net, 100, h1.vtep) is True
    dev = await device(h1.ipr, net.ifname)
    assert (dev["vni"], dev["port"], dev["local"], dev["learning"], dev["proxy"]) == (100, 4789, h1.vtep, 0, 1)
    assert dev["index"] != index and dev["up"] and dev["alias"] == vxlan_alias(NET_A)
    # ...and it carries traffic.
    c1 = await lab.container(h1, net, 11)
    net2 = await lab.network(h2, NET_A, 100)
    c2 = await lab.container(h2, net2, 12)
    await lab.wire({h1: net, h2: net2}, [c1, c2])
    assert ping(c1.ns, c2.ip)


async def test_master_state_and_mtu_are_repaired_in_place(lab: Lab) -> None:
    await lab.start(1)
    (h1,) = lab.hosts
    net = await lab.network(h1, NET_A, 100)
    good = await device(h1.ipr, net.ifname)
    await h1.ipr.link("set", index=good["index"], state="down", master=0, mtu=1300)
    assert (await device(h1.ipr, net.ifname))["master"] is None
    assert await h1.vx.ensure_vxlan(net, 100, h1.vtep) is False
    assert await device(h1.ipr, net.ifname) == good


async def test_a_leftover_born_ours_but_never_marked_is_made_again(lab: Lab) -> None:
    await lab.start(1)
    (h1,) = lab.hosts
    bridge = bridge_name(NET_A)
    await h1.dp.ensure_bridge(BridgeSpec(bridge, NET_A, derived_mac(NET_A), None, ()))
    net = VxlanNetwork(NET_A, bridge)
    await h1.ipr.link("add", ifname=net.ifname, kind="vxlan", vxlan_id=7, vxlan_local=h1.vtep,
                      address=birth_mac("pynetdrv", net.ifname))
    assert await h1.vx.ensure_vxlan(net, 100, h1.vtep) is True
    assert (await device(h1.ipr, net.ifname))["vni"] == 100


async def test_a_device_not_ours_is_refused_by_name_and_left_alone(lab: Lab) -> None:
    await lab.start(1)
    (h1,) = lab.hosts
    bridge = bridge_name(NET_A)
    await h1.dp.ensure_bridge(BridgeSpec(bridge, NET_A, derived_mac(NET_A), None, ()))
    net = VxlanNetwork(NET_A, bridge)
    other_instance = VxlanNetwork(NET_A, bridge, device="pnvx-other")
    await h1.ipr.link("add", ifname=net.ifname, kind="vxlan", vxlan_id=7, vxlan_local=h1.vtep)
    await h1.ipr.link("add", ifname="pnvx-other", kind="vxlan", vxlan_id=8, vxlan_local=h1.vtep)
    (other,) = await h1.ipr.link_lookup(ifname="pnvx-other")
    await h1.ipr.link("set", index=other, ifalias=vxlan_alias(NET_A, instance="pynetdrv-it"))
    before = {n: await device(h1.ipr, n) for n in (net.ifname, "pnvx-other")}
    with pytest.raises(ForeignLinkError, match=f"link {net.ifname} exists and was not created by pynetdrv"):
        await h1.vx.ensure_vxlan(net, 100, h1.vtep)
    with pytest.raises(ForeignLinkError, match="link pnvx-other exists"):
        await h1.vx.ensure_vxlan(other_instance, 8, h1.vtep)
    with pytest.raises(ForeignLinkError, match=f"link {net.ifname} is not pynetdrv's vxlan"):
        await h1.vx.sync(net, [], [])
    await h1.vx.remove_vxlan(net)
    await h1.vx.remove_vxlan(other_instance)
    assert {n: await device(h1.ipr, n) for n in (net.ifname, "pnvx-other")} == before
    assert await h1.vx.list_vxlan_state() == []


async def test_a_bridge_not_the_networks_is_refused(lab: Lab) -> None:
    await lab.start(1)
    (h1,) = lab.hosts
    await h1.ipr.link("add", ifname="userbr", kind="bridge")
    await h1.dp.ensure_bridge(BridgeSpec(bridge_name(NET_B), NET_B, derived_mac(NET_B), None, ()))
    with pytest.raises(ForeignLinkError, match="link userbr is not pynetdrv's bridge"):
        await h1.vx.ensure_vxlan(VxlanNetwork(NET_A, "userbr"), 100, h1.vtep)
    with pytest.raises(ForeignLinkError, match=f"link {bridge_name(NET_B)} is network b2b2b2b2b2b2's bridge"):
        await h1.vx.ensure_vxlan(VxlanNetwork(NET_A, bridge_name(NET_B)), 100, h1.vtep)
    with pytest.raises(DataplaneError, match="read bridge nobr: No such device"):
        await h1.vx.ensure_vxlan(VxlanNetwork(NET_A, "nobr"), 100, h1.vtep)
    assert not await h1.ipr.link_lookup(ifname=VxlanNetwork(NET_A, "x").ifname)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"vni": 0}, "VNI 0"),
    ({"local_ip": "192.168.250.99"}, "local VTEP address 192.168.250.99 is not an address of this host"),
    ({"local_ip": "nonsense"}, "'nonsense' is not an IP address"),
    ({"port": 70000}, "port 70000"),
    ({"underlay_dev": "eth9"}, "read underlay device eth9: No such device"),
])
async def test_bad_input_is_refused_by_name_and_creates_nothing(lab: Lab, kwargs: dict[str, object],
                                                                named: str) -> None:
    await lab.start(1)
    (h1,) = lab.hosts
    bridge = bridge_name(NET_A)
    await h1.dp.ensure_bridge(BridgeSpec(bridge, NET_A, derived_mac(NET_A), None, ()))
    net = VxlanNetwork(NET_A, bridge)
    args: dict[str, object] = {"vni": 100, "local_ip": h1.vtep, **kwargs}
    with pytest.raises(DataplaneError, match=named):
        await h1.vx.ensure_vxlan(net, **args)  # type: ignore[arg-type]
    assert not await h1.ipr.link_lookup(ifname=net.ifname)


async def test_entries_of_others_are_never_touched(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    h1, net = c1.host, nets[c1.host]
    (vx,) = await h1.ipr.link_lookup(ifname=net.ifname)
    # An operator's own entries on our device, and a device of someone else's with entries.
    await h1.ipr.fdb("append", ifindex=vx, lladdr="02:99:00:00:00:01", dst="192.168.250.99")
    await h1.ipr.neigh("replace", ifindex=vx, dst="10.77.0.99", lladdr="02:99:00:00:00:01",
                       state=states["permanent"])
    await h1.ipr.link("add", ifname="uservx", kind="vxlan", vxlan_id=500, vxlan_local=h1.vtep, vxlan_port=4790)
    (uvx,) = await h1.ipr.link_lookup(ifname="uservx")
    await h1.ipr.link("set", index=uvx, state="up")
    await h1.ipr.fdb("append", ifindex=uvx, lladdr=ZERO_MAC, dst=c2.host.vtep)
    await h1.ipr.fdb("append", ifindex=uvx, lladdr=c3.mac, dst=c3.host.vtep)
    await h1.ipr.neigh("replace", ifindex=uvx, dst=c2.ip, lladdr=c2.mac, state=states["permanent"])
    theirs = await kernel_entries(h1.ipr, net.ifname), await kernel_entries(h1.ipr, "uservx")
    await lab.wire(nets, [c1, c2, c3])
    assert ping(c1.ns, c2.ip)
    await h1.vx.sync(net, [], [])
    assert (await kernel_entries(h1.ipr, net.ifname), await kernel_entries(h1.ipr, "uservx")) == theirs
    # An entry of ours over one of theirs: refused by name, and nothing changes.
    await h1.vx.sync(net, [c2.endpoint()], [c2.host.vtep])
    ours = await kernel_entries(h1.ipr, net.ifname)
    clash = RemoteEndpoint("02:99:00:00:00:02", ("10.77.0.99",), c3.host.vtep)
    with pytest.raises(ForeignEntryError, match=f"vxlan {net.ifname}: .*neighbour entry 10.77.0.99"):
        await h1.vx.sync(net, [c3.endpoint(), clash], [c2.host.vtep, c3.host.vtep])
    with pytest.raises(ForeignEntryError, match="FDB entry 02:99:00:00:00:01"):
        await h1.vx.ensure_remote_endpoint(net, RemoteEndpoint("02:99:00:00:00:01", ("10.77.0.98",), c3.host.vtep))
    assert await kernel_entries(h1.ipr, net.ifname) == ours
    # What list_vxlan_state reports is ours only.
    (state,) = await h1.vx.list_vxlan_state()
    assert state.network_id == NET_A and state.master == net.bridge and state.vni == 100
    assert state.fdb == {FdbEntry(c2.mac, c2.host.vtep), FdbEntry(ZERO_MAC, c2.host.vtep)}
    assert state.neigh == {NeighEntry(c2.ip, c2.mac), NeighEntry(c2.ip6, c2.mac)}
    await h1.vx.remove_vxlan(net)
    assert await kernel_entries(h1.ipr, "uservx") == theirs[1]


async def test_a_flood_entry_someone_else_made_gets_no_destination_of_ours(lab: Lab) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    h1, net = c1.host, nets[c1.host]
    (vx,) = await h1.ipr.link_lookup(ifname=net.ifname)
    await h1.ipr.fdb("append", ifindex=vx, lladdr=ZERO_MAC, dst="192.168.250.98")
    theirs = await kernel_entries(h1.ipr, net.ifname)
    with pytest.raises(ForeignEntryError, match=f"vxlan {net.ifname}: .*FDB entry 00:00:00:00:00:00"):
        await h1.vx.sync(net, [c2.endpoint()], [c2.host.vtep])
    with pytest.raises(ForeignEntryError, match="FDB entry 00:00:00:00:00:00"):
        await h1.vx.ensure_peer_host(net, c3.host.vtep)
    assert await kernel_entries(h1.ipr, net.ifname) == theirs
    # Without flooding, the rest of the entries go in; theirs stays.
    assert await h1.vx.sync(net, [c2.endpoint()], []) == 3
    assert await h1.vx.sync(net, [], []) == 3
    assert await kernel_entries(h1.ipr, net.ifname) == theirs


@pytest.mark.parametrize("tool", ["iptables-nft", "iptables-legacy"])
async def test_vxlan_from_a_host_not_in_the_member_list_is_dropped(lab: Lab, tool: str) -> None:
    nets, (c1, c2, c3) = await three_hosts(lab)
    await lab.wire(nets, [c1, c2, c3])
    assert ping(c3.ns, c1.ip) and ping(c2.ns, c1.ip), "not reachable before any rule: the test would prove nothing"
    h1 = c1.host
    table = render_vxlan_input([h1.vtep, c2.host.vtep], 4789, "PNTEST", 4)
    (jump,) = table.jumps
    text = restore_text([table], {"filter": [(jump, 1)]})
    restore(h1.ns, tool, text)
    saved = in_netns(h1.ns, f"{tool}-save", "-t", "filter").stdout.splitlines()
    assert [line for line in saved if "VXLAN-IN" in line and not line.startswith(":")] == [jump.line, *table.rules]
    assert ping(c2.ns, c1.ip), "a member's VXLAN was dropped"
    assert not ping(c3.ns, c1.ip), "VXLAN from a host that is not a member got in"
