"""``pynetdrv check``'s VXLAN comparison on a real kernel: a host namespace (``Lab`` of
test_netns_vxlan) with a network's bridge and VXLAN device, the registry naming one remote host with
one endpoint.  In sync: no finding; entries the registry does not have, and entries it has that the
device lacks, are findings naming the network and the entry; repair (the daemon's sync) clears them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest_asyncio
from test_netns_vxlan import NET_A, Lab

from pynetdrv.check.cluster_checks import ClusterExpect, compare_vxlan, repair_vxlan
from pynetdrv.dataplane.vxlan import RemoteEndpoint
from pynetdrv.registry.member import CLUSTER_OPTION
from pynetdrv.registry.view import EndpointEntry, HostEntry, RegistryView
from pynetdrv.store.base import NetworkRecord

CNET, VNI = "local/10.77.0.0/24", 100
PEER, MAC, IP = "192.168.250.12", "02:42:0a:4d:00:0c", "10.77.0.12"


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    """Namespaces (and the sockets into them) removed when the test ends, whatever happens."""
    async with AsyncExitStack() as stack:
        yield Lab(stack)


async def test_check_compares_the_kernel_vxlan_device_with_the_registry(lab: Lab) -> None:
    await lab.start(1)
    (host,) = lab.hosts
    vnet = await lab.network(host, NET_A, VNI)
    rec = NetworkRecord(NET_A, vnet.bridge, "02:00:00:00:00:01", None, pools=("10.77.0.0/24",),
                        options={CLUSTER_OPTION: {"network": CNET, "vni": VNI}})
    view = RegistryView(b"/r/")
    view.hosts[PEER] = HostEntry(PEER, (CNET,))
    view.endpoints[(PEER, "e" * 64)] = EndpointEntry(CNET, MAC, (IP,), PEER)

    async def expect() -> ClusterExpect:
        return ClusterExpect(view, host.vtep, 4789, await host.vx.list_vxlan_state())

    # the device as created: nothing from the registry yet
    subject = f"vxlan {vnet.ifname} of network {NET_A[:12]} (cluster network {CNET}, VNI {VNI})"
    lines = sorted(f.line() for f in compare_vxlan((rec,), await expect()))
    assert lines == sorted([f"missing {subject}: FDB entry {MAC} -> {PEER}",
                            f"missing {subject}: flood entry (peer host) 00:00:00:00:00:00 -> {PEER}",
                            f"missing {subject}: neighbour entry {IP} -> {MAC}"])
    # a stale endpoint on the device (one the registry no longer has)
    await host.vx.sync(vnet, [RemoteEndpoint(MAC, (IP,), PEER),
                              RemoteEndpoint("02:42:0a:4d:00:0d", ("10.77.0.13",), "192.168.250.13")], [PEER])
    stale = compare_vxlan((rec,), await expect())
    assert sorted(f.line() for f in stale) == sorted([
        f"orphan {subject}: FDB entry 02:42:0a:4d:00:0d -> 192.168.250.13 not in the registry",
        f"orphan {subject}: neighbour entry 10.77.0.13 -> 02:42:0a:4d:00:0d not in the registry"])
    assert all(f.repairable for f in stale)
    done = await repair_vxlan(stale, (rec,), await expect(), host.vx)
    assert done == [f"synced vxlan {vnet.ifname} of network {NET_A[:12]} with the registry (2 change(s))"]
    assert compare_vxlan((rec,), await expect()) == []  # in sync: no finding
    # a wrong local IP (the device bound to another address than this host's VTEP)
    wrong = ClusterExpect(view, "192.168.250.99", 4789, await host.vx.list_vxlan_state())
    (f,) = compare_vxlan((rec,), wrong)
    assert f.line() == f"mismatch {subject}: local IP is {host.vtep}, the cluster wants 192.168.250.99"
