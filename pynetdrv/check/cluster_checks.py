"""Cluster mode: this host's VXLAN devices against the registry (docs/multihost.md).

Per local cluster network (a network record carrying ``registry.member.CLUSTER_OPTION``):
- one VXLAN device of ours, with the network's VNI, the cluster's VXLAN port and this host's
  advertise address as local IP;
- on it exactly the entries ``VxlanDataplane.sync`` makes from the registry: per remote endpoint an
  FDB entry (MAC -> its host's VTEP) and a neighbour entry per IP (IP -> MAC), per remote host of the
  network an all-zero FDB entry.

Each difference is a finding naming the network and the entry; ``--repair`` runs the daemon's own
``ensure_vxlan`` + ``sync`` for the network (``repair_vxlan``).  Pure except ``repair_vxlan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pynetdrv.check.context import CheckContext, short
from pynetdrv.check.model import Finding
from pynetdrv.dataplane.vxlan import VxlanDeviceState, VxlanNetwork
from pynetdrv.dataplane.vxlan_plan import ZERO_MAC, RemoteEndpoint, VxlanInputError, wanted_entries
from pynetdrv.registry.member import cluster_of
from pynetdrv.registry.view import RegistryView
from pynetdrv.store.base import NetworkRecord

ACTION = "vxlan_sync"


@dataclass
class ClusterExpect:
    """What the cluster says this host's VXLAN devices must be, and what the kernel has."""

    registry: RegistryView
    #: This host's advertise address (its VTEP, its name in the registry).
    host: str
    port: int
    devices: list[VxlanDeviceState]


def wanted_for(view: RegistryView, cluster_net: str, host: str) -> tuple[list[RemoteEndpoint], tuple[str, ...]]:
    """The remote endpoints and peer VTEPs ``ClusterMember.sync_all`` gives ``sync`` for a network."""
    remote = view.remote(cluster_net, host)
    return [RemoteEndpoint(e.mac, e.ips, e.vtep) for e in remote.endpoints], remote.vteps


def compare_network(net: NetworkRecord, expect: ClusterExpect) -> list[Finding]:
    c = cluster_of(net)
    if c is None:
        return []
    cluster_net, vni = c
    ifname = VxlanNetwork(net.network_id, net.bridge).ifname
    subject = f"vxlan {ifname} of network {short(net.network_id)} (cluster network {cluster_net}, VNI {vni})"
    action = (ACTION, net.network_id)
    dev = next((d for d in expect.devices if d.network_id == net.network_id), None)
    if dev is None:
        return [Finding("missing", subject, "no VXLAN device in the kernel", True, action)]
    found = [Finding("mismatch", subject, f"{what} is {have}, the cluster wants {want}", True, action)
             for what, have, want in (("VNI", dev.vni, vni), ("UDP port", dev.port, expect.port),
                                      ("local IP", dev.local, expect.host))
             if have != want]
    endpoints, vteps = wanted_for(expect.registry, cluster_net, expect.host)
    try:
        wanted = wanted_entries(endpoints, vteps)
    except VxlanInputError as e:
        return [*found, Finding("mismatch", subject, f"the registry contradicts itself: {e}")]
    for entry in sorted(wanted.fdb - dev.fdb):
        what = "flood entry (peer host)" if entry.mac == ZERO_MAC else "FDB entry"
        found.append(Finding("missing", subject, f"{what} {entry.mac} -> {entry.dst}", True, action))
    for entry in sorted(dev.fdb - wanted.fdb):
        found.append(Finding("orphan", subject, f"FDB entry {entry.mac} -> {entry.dst} not in the registry",
                             True, action))
    for n in sorted(wanted.neigh - dev.neigh):
        found.append(Finding("missing", subject, f"neighbour entry {n.ip} -> {n.mac}", True, action))
    for n in sorted(dev.neigh - wanted.neigh):
        found.append(Finding("orphan", subject, f"neighbour entry {n.ip} -> {n.mac} not in the registry",
                             True, action))
    return found


def compare_vxlan(networks: tuple[NetworkRecord, ...], expect: ClusterExpect) -> list[Finding]:
    found = [f for net in networks for f in compare_network(net, expect)]
    ours = {n.network_id for n in networks if cluster_of(n) is not None}
    for dev in expect.devices:
        if dev.network_id not in ours:
            found.append(Finding("orphan", f"vxlan {dev.name}",
                                 f"VXLAN device of network {short(dev.network_id) or '?'}, which is not a cluster "
                                 "network of this host's state (not repaired here: the daemon removes it "
                                 "when it starts)"))
    return found


async def check_cluster(ctx: CheckContext) -> list[Finding]:
    if ctx.cluster is None:
        return []
    return compare_vxlan(ctx.state.networks, ctx.cluster)


class VxlanSync(Protocol):
    """What repair uses of ``dataplane.vxlan.VxlanDataplane`` (tests give ``tests/fakes/vxlan``)."""

    async def ensure_vxlan(self, network: Any, vni: int, local_ip: str, port: int = ...,
                           underlay_dev: str | None = None, mtu: int | None = None) -> bool: ...

    async def remove_vxlan(self, network: Any) -> None: ...

    async def sync(self, network: Any, wanted_endpoints: Any, wanted_hosts: Any) -> int: ...


async def repair_vxlan(findings: list[Finding], networks: tuple[NetworkRecord, ...], expect: ClusterExpect,
                       vxlan: VxlanSync) -> list[str]:
    """The daemon's own steps for every network with a finding: ``ensure_vxlan`` then ``sync`` with
    the registry's entries; a device of no local cluster network is removed."""
    from pynetdrv.dataplane.base import DataplaneError

    done = []
    by_id = {n.network_id: n for n in networks}
    todo = sorted({f.action[1] for f in findings if f.action[:1] == (ACTION,)})
    for network_id in todo:
        net = by_id[network_id]
        c = cluster_of(net)
        assert c is not None
        vnet = VxlanNetwork(net.network_id, net.bridge)
        try:
            await vxlan.ensure_vxlan(vnet, c[1], expect.host, expect.port, mtu=net.mtu)
            endpoints, vteps = wanted_for(expect.registry, c[0], expect.host)
            n = await vxlan.sync(vnet, endpoints, vteps)
            done.append(f"synced vxlan {vnet.ifname} of network {short(network_id)} with the registry "
                        f"({n} change(s))")
        except (DataplaneError, VxlanInputError) as e:
            done.append(f"failed: sync vxlan {vnet.ifname}: {e}")
    return done
