"""An in-memory VXLAN data plane (the part of dataplane.vxlan.VxlanDataplane that
registry.member.ClusterMember uses): devices by network, and the remote endpoints and peer hosts
each was last synced to.  ``fail`` makes the next calls raise DataplaneError (a kernel refusing).
``mark_delay`` > 0 makes a new device take that long to be marked ours, as the real one is made and
then given its alias: an ensure meanwhile takes it for a dead run's leftover and deletes it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pynetdrv.dataplane.base import DataplaneError
from pynetdrv.dataplane.vxlan import VxlanDeviceState, VxlanNetwork
from pynetdrv.dataplane.vxlan_plan import LocalPort, RemoteEndpoint, wanted_entries


@dataclass
class FakeDevice:
    network: VxlanNetwork
    vni: int
    local: str
    port: int
    mtu: int | None
    endpoints: frozenset[RemoteEndpoint] = frozenset()
    hosts: frozenset[str] = frozenset()
    marked: bool = True


@dataclass
class FakeVxlan:
    underlay: int = 1500
    devices: dict[str, FakeDevice] = field(default_factory=dict)  # by network id
    fail: bool = False
    mark_delay: float = 0.0
    making: set[str] = field(default_factory=set)  # network ids whose new device is not marked yet
    #: network id -> (local ports, remote addresses) of its fast path
    fast: dict[str, tuple[tuple[LocalPort, ...], tuple[str, ...]]] = field(default_factory=dict)

    def _check(self, what: str) -> None:
        if self.fail:
            raise DataplaneError(f"{what}: Operation not permitted (fake)")

    async def ensure_vxlan(self, network: VxlanNetwork, vni: int, local_ip: str, port: int = 4789,
                           underlay_dev: str | None = None, mtu: int | None = None) -> bool:
        self._check(f"ensure vxlan {network.ifname}")
        nid = network.network_id
        dev = self.devices.get(nid)
        if dev is not None and not dev.marked:  # what the real one does with an unmarked device of ours
            del self.devices[nid]
            dev = None
        if dev is not None and (dev.vni, dev.local, dev.port) == (vni, local_ip, port):
            dev.mtu = mtu
            return False
        new = self.devices[nid] = FakeDevice(network, vni, local_ip, port, mtu, marked=not self.mark_delay)
        if self.mark_delay:
            self.making.add(nid)
            try:
                await asyncio.sleep(self.mark_delay)
            finally:
                self.making.discard(nid)
            if self.devices.get(nid) is not new:
                raise DataplaneError(f"set alias {network.ifname}: No such device (fake)")
            new.marked = True
        return True

    async def remove_vxlan(self, network: VxlanNetwork) -> None:
        self._check(f"remove vxlan {network.ifname}")
        self.devices.pop(network.network_id, None)
        self.fast.pop(network.network_id, None)

    async def sync(self, network: VxlanNetwork, wanted_endpoints: Iterable[RemoteEndpoint],
                   wanted_hosts: Iterable[str]) -> int:
        self._check(f"sync vxlan {network.ifname}")
        dev = self.devices.get(network.network_id)
        if dev is None:
            raise DataplaneError(f"vxlan {network.ifname}: No such device (fake)")
        eps, hosts = frozenset(wanted_endpoints), frozenset(wanted_hosts)
        changes = len(eps ^ dev.endpoints) + len(hosts ^ dev.hosts)
        dev.endpoints, dev.hosts = eps, hosts
        return changes

    async def fast_path(self, network: VxlanNetwork, local: Sequence[LocalPort], remote_ips: Iterable[str]) -> int:
        self._check(f"fast path of {network.ifname}")
        wanted = (tuple(sorted(local, key=lambda p: p.ifname)), tuple(sorted(set(remote_ips))))
        if self.fast.get(network.network_id, ((), ())) == wanted:
            return 0
        self.fast[network.network_id] = wanted
        return 1

    async def underlay_mtu(self, local_ip: str) -> int:
        return self.underlay

    async def list_vxlan_state(self) -> list[VxlanDeviceState]:
        """The devices as the real one reports them: the entries ``sync`` put, as kernel entries."""
        out = []
        for nid, dev in sorted(self.devices.items()):
            w = wanted_entries(dev.endpoints, dev.hosts)
            out.append(VxlanDeviceState(dev.network.ifname, nid, dev.vni, dev.port, dev.local, None, dev.network.bridge,
                                        True, dev.mtu, False, True, w.fdb, w.neigh))
        return out

    async def close(self) -> None:
        pass


@dataclass
class FakeGuard:
    """The VXLAN port's firewall (firewall.vxlan_guard.VxlanGuard): the member lists it was given."""

    applied: list[tuple[str, ...]] = field(default_factory=list)
    forced: int = 0

    async def apply(self, members: Iterable[str], force: bool = False) -> None:
        wanted = tuple(sorted(set(members)))
        self.forced += force
        if not self.applied or self.applied[-1] != wanted or force:
            self.applied.append(wanted)
