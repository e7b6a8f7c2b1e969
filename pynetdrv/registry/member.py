"""This host as a cluster member: what the network driver tells it (network and endpoint created or
gone) and what the registry tells it (other hosts' endpoints), turned into VXLAN devices and
entries on this host.

- A cluster network is identified by its first pool id (the same on every host: pools are joined by
  subnet, ``store.cluster``); this host's Docker network ID maps to it through the network record,
  which also keeps the VNI (``CLUSTER_OPTION``), so the data plane is rebuilt after a restart even
  while etcd is away.
- Every change of the registry (coalesced) syncs each local cluster network's VXLAN device with
  the other hosts' endpoints (permanent neighbour + FDB entry each) and hosts (all-zero FDB entry
  each): idempotent, so a resync after a lost watch is the same call.
- etcd unreachable: the kernel entries stay as they are (containers keep talking); creating a
  network fails (it needs a VNI), an endpoint's registry write is retried by the registry.
- The background sync and the driver's create/delete never work on one device at once: every VXLAN
  kernel step here holds one lock, and the sync leaves alone a network while the driver creates or
  deletes it (``changing``: its record is stored before its device is made, and kept until after the
  device is removed, so the sync would see a network half made or half gone).  Steps at once broke
  both: the sync took the driver's half-made device for a dead run's leftover and deleted it, then
  made its own after the driver's undo had run; that one outlived the network and held its VNI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from pynetdrv.cluster.errors import EtcdError
from pynetdrv.dataplane.base import DataplaneError
from pynetdrv.dataplane.vxlan_plan import LocalPort, RemoteEndpoint
from pynetdrv.registry.registry import LocalRecords, Registry
from pynetdrv.registry.view import EndpointEntry, HostEntry
from pynetdrv.store.base import EndpointRecord, NetworkRecord
from pynetdrv.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Key of a network record's options holding ``{"network": cluster network id, "vni": n}``.
CLUSTER_OPTION = "pynetdrv.cluster"
#: VXLAN over IPv4 costs 50 bytes of the underlay's MTU.
VXLAN_OVERHEAD = 50


class VxlanPort(Protocol):
    """The part of dataplane.vxlan.VxlanDataplane a member uses (tests give a fake)."""

    async def ensure_vxlan(self, network: Any, vni: int, local_ip: str, port: int = ...,
                           underlay_dev: str | None = None, mtu: int | None = None) -> bool: ...

    async def remove_vxlan(self, network: Any) -> None: ...

    async def sync(self, network: Any, wanted_endpoints: Any, wanted_hosts: Any) -> int: ...

    async def underlay_mtu(self, local_ip: str) -> int: ...

    async def list_vxlan_state(self) -> Sequence[Any]: ...

    async def fast_path(self, network: Any, local: Sequence[LocalPort], remote_ips: Iterable[str]) -> int: ...


class Networks(Protocol):
    """This host's records (the local SQLite store)."""

    async def list_networks(self) -> list[NetworkRecord]: ...

    async def list_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]: ...


class Vnis(Protocol):
    async def vni(self, pool_id: str) -> int: ...


def cluster_of(net: NetworkRecord) -> tuple[str, int] | None:
    """(cluster network id, VNI) of a network record made in cluster mode, None otherwise."""
    c = net.options.get(CLUSTER_OPTION)
    if isinstance(c, dict) and isinstance(c.get("network"), str) and isinstance(c.get("vni"), int):
        return c["network"], c["vni"]
    return None


def cluster_network_id(net: NetworkRecord, space: str = "local") -> str:
    """The first pool's id (``ipam.service.pool_id``): the same on every host using that subnet."""
    if not net.pools:
        raise ValueError(f"network {net.network_id[:12]} has no pool: a cluster network needs --subnet")
    return f"{space}/{net.pools[0]}"


class Guard(Protocol):
    """The VXLAN port's firewall (firewall.vxlan_guard.VxlanGuard): accept only these VTEPs."""

    async def apply(self, members: Iterable[str], force: bool = False) -> None: ...


#: How often the guard's rules are checked and repaired even without a change (seconds).
GUARD_EVERY_S = 30.0


def _ips(ep: EndpointRecord) -> tuple[str, ...]:
    return tuple(a.split("/")[0] for a in (ep.address, ep.address_v6) if a)


class ClusterMember:
    def __init__(self, vxlan: VxlanPort, local: Networks, vnis: Vnis, registry_factory: Any,
                 host: str, port: int, guard: Guard | None = None, fast_path: bool = True) -> None:
        self._vxlan, self._local, self._vnis, self._guard = vxlan, local, vnis, guard
        self._fast_path = fast_path
        self._force_guard = False
        self.host, self.port = host, port
        self.registry: Registry = registry_factory(self._records, self._registry_changed)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._underlay_mtu: int | None = None
        self._kernel = asyncio.Lock()  # one VXLAN kernel step at a time (driver's and sync's)
        self._busy: Counter[str] = Counter()  # network ids the driver is creating or deleting
        self.syncs = 0  # completed full syncs (tests wait on it)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Before anything is served (the daemon starts it after reconcile): devices of no stored
        network go, then the sync and the registry start."""
        await self._remove_orphans()
        self._task = asyncio.create_task(self._syncer(), name="cluster vxlan sync")
        self._keeper = asyncio.create_task(self._keep_guard(), name="cluster vxlan guard keeper")
        await self.registry.start()
        self._dirty.set()  # devices of the stored networks, even before etcd answers

    async def _remove_orphans(self) -> None:
        """A VXLAN device of ours whose network is not a stored cluster network of this host is
        stale (its record is stored before it is made and deleted after it is removed): a crash
        or a bug left it, and it still holds its VNI, so a new network with that VNI would fail."""
        from pynetdrv.dataplane.vxlan import VxlanNetwork

        stored = {n.network_id for n in await self._local.list_networks() if cluster_of(n)}
        for dev in await self._vxlan.list_vxlan_state():
            if dev.network_id in stored:
                continue
            log.warning("removing VXLAN device %s (VNI %s) of network %s: no such cluster network here",
                        dev.name, dev.vni, dev.network_id[:12] or "? (never marked)")
            try:
                await self._vxlan.remove_vxlan(VxlanNetwork(dev.network_id, dev.master or "", dev.name))
            except DataplaneError as e:
                log.error("could not remove stale VXLAN device %s: %s", dev.name, e)

    async def stop(self) -> None:
        await self.registry.stop()
        tasks = [t for t in (self._task, self._keeper) if t is not None]
        self._task = self._keeper = None
        await stop_tasks(tasks)

    # -- hooks of the network driver ---------------------------------------------------------------
    @asynccontextmanager
    async def changing(self, network_id: str) -> AsyncIterator[None]:
        """Around the driver's whole create or delete of a network: the sync leaves it alone, then
        syncs it as it was left (made, gone, or put back by an undo)."""
        self._busy[network_id] += 1
        try:
            yield
        finally:
            self._busy[network_id] -= 1
            if self._busy[network_id] <= 0:
                del self._busy[network_id]
            self._dirty.set()

    async def prepare_network(self, net: NetworkRecord) -> NetworkRecord:
        """Before the bridge exists: the cluster identity and VNI (from etcd; raises EtcdError naming
        it when unreachable) and the MTU (underlay - 50 unless the user gave one)."""
        known = cluster_of(net)
        if known is None:
            cid = cluster_network_id(net)
            known = (cid, await self._vnis.vni(cid))
        mtu = net.mtu
        if mtu is None:
            if self._underlay_mtu is None:
                self._underlay_mtu = await self._vxlan.underlay_mtu(self.host)
            mtu = self._underlay_mtu - VXLAN_OVERHEAD
        options = {**net.options, CLUSTER_OPTION: {"network": known[0], "vni": known[1]}}
        return dataclasses.replace(net, mtu=mtu, options=options)

    async def network_ready(self, net: NetworkRecord) -> None:
        """After the bridge: the VXLAN device, then this host's record (best effort: the registry
        retries while etcd is away) and a sync."""
        async with self._kernel:
            await self._ensure_device(net)
        await self._publish_host()
        self._dirty.set()

    async def network_gone(self, net: NetworkRecord) -> None:
        """Before the bridge goes.  A remote driver cannot refuse ``docker network rm``, so this host
        just leaves the cluster network; which hosts still use it is logged."""
        from pynetdrv.dataplane.vxlan import VxlanNetwork

        async with self._kernel:
            await self._vxlan.remove_vxlan(VxlanNetwork(net.network_id, net.bridge))
        c = cluster_of(net)
        if c is not None:
            others = [h for h in self.registry.view.users(c[0]) if h != self.host]
            log.info("network %s left cluster network %s (VNI %d); still used by %s", net.network_id[:12],
                     c[0], c[1], ", ".join(others) or "no other host")

    async def network_removed(self, net: NetworkRecord) -> None:
        """After the record is gone: this host's record without that network."""
        await self._publish_host()

    async def endpoint_ready(self, net: NetworkRecord, ep: EndpointRecord) -> None:
        """Its registry record; the watch's echo of that write starts the sync that gives it its fast
        path (with etcd away, the guard keeper's sync every GUARD_EVERY_S does)."""
        c = cluster_of(net)
        if c is None:
            return
        try:
            await self.registry.put_endpoint(ep.endpoint_id, self._entry(c[0], ep))
        except EtcdError as e:
            log.warning("endpoint %s is not in the registry yet (written when etcd answers): %s",
                        ep.endpoint_id[:12], e)

    async def endpoint_gone(self, ep: EndpointRecord) -> None:
        try:
            await self.registry.delete_endpoint(ep.endpoint_id)
        except EtcdError as e:
            log.warning("endpoint %s stays in the registry until etcd answers: %s", ep.endpoint_id[:12], e)

    # -- the registry side -------------------------------------------------------------------------
    def _entry(self, cluster_net: str, ep: EndpointRecord) -> EndpointEntry:
        return EndpointEntry(cluster_net, ep.mac, _ips(ep), self.host)

    async def _records(self) -> LocalRecords:
        nets = {n.network_id: c for n in await self._local.list_networks() if (c := cluster_of(n))}
        eps = {ep.endpoint_id: self._entry(nets[ep.network_id][0], ep)
               for ep in await self._local.list_endpoints() if ep.network_id in nets}
        return LocalRecords(HostEntry(self.host, tuple(sorted({c[0] for c in nets.values()}))), eps)

    async def _publish_host(self) -> None:
        try:
            await self.registry.put_host((await self._records()).host)
        except EtcdError as e:
            log.warning("host record not updated yet (written when etcd answers): %s", e)

    async def _registry_changed(self) -> None:
        self._dirty.set()

    async def _ensure_device(self, net: NetworkRecord) -> None:
        from pynetdrv.dataplane.vxlan import VxlanNetwork

        c = cluster_of(net)
        if c is not None:
            await self._vxlan.ensure_vxlan(VxlanNetwork(net.network_id, net.bridge), c[1], self.host, self.port,
                                           mtu=net.mtu)

    async def _syncer(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync_all()
            except Exception:
                log.exception("cluster: syncing the VXLAN devices failed; trying again")
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def sync_all(self) -> None:
        """Each local cluster network's device made and its entries made exactly the registry's."""
        from pynetdrv.dataplane.vxlan import VxlanNetwork

        endpoints: dict[str, list[EndpointRecord]] = {}
        for ep in await self._local.list_endpoints():
            endpoints.setdefault(ep.network_id, []).append(ep)
        for net in await self._local.list_networks():
            c = cluster_of(net)
            if c is None:
                continue
            async with self._kernel:
                if net.network_id in self._busy:
                    continue  # the driver is at it; a sync follows (network_ready, or changing's end)
                await self._ensure_device(net)
                if not self.registry.ready.is_set():
                    continue  # the registry is not read yet: keep the kernel's entries as they are
                remote = self.registry.view.remote(c[0], self.host)
                wanted = [RemoteEndpoint(e.mac, e.ips, e.vtep) for e in remote.endpoints]
                vnet = VxlanNetwork(net.network_id, net.bridge)
                changed = await self._vxlan.sync(vnet, wanted, remote.vteps)
                if self._fast_path and net.icc:  # icc off: its isolation is iptables rules on the bridge
                    local = [LocalPort(ep.host_ifname, _ips(ep)) for ep in endpoints.get(net.network_id, [])]
                    changed += await self._vxlan.fast_path(vnet, local, [ip for e in wanted for ip in e.ips])
                else:
                    changed += await self._vxlan.fast_path(vnet, [], [])
            if changed:
                log.info("vxlan of network %s: %d change(s) (%d remote endpoint(s), %d host(s))",
                         net.network_id[:12], changed, len(wanted), len(remote.vteps))
        if self._guard is not None and self.registry.ready.is_set():
            force, self._force_guard = self._force_guard, False
            await self._guard.apply((*self.registry.view.members(), self.host), force=force)
        self.syncs += 1

    async def _keep_guard(self) -> None:
        while True:
            await asyncio.sleep(GUARD_EVERY_S)
            self._force_guard = True
            self._dirty.set()
