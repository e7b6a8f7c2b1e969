"""An in-memory VXLAN data plane (the part of dataplane.vxlan.VxlanDataplane that
registry.member.ClusterMember uses): devices by network, and the remote endpoints and peer hosts
each was last synced to.  ``fail`` makes the next calls raise DataplaneError (a kernel refusing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pynetdrv.dataplane.base import DataplaneError
from pynetdrv.dataplane.vxlan import VxlanDeviceState, VxlanNetwork
from pynetdrv.dataplane.vxlan_plan import RemoteEndpoint, wanted_entries


@dataclass
class FakeDevice:
    network: VxlanNetwork
    vni: int
    local: str
    port: int
    mtu: int | None
    endpoints: frozenset[RemoteEndpoint] = frozenset()
    hosts: frozenset[str] = frozenset()


@dataclass
class FakeVxlan:
    underlay: int = 1500
    devices: dict[str, FakeDevice] = field(default_factory=dict)  # by network id
    fail: bool = False

    def _check(self, what: str) -> None:
        if self.fail:
            raise DataplaneError(f"{what}: Operation not permitted (fake)")

    async def ensure_vxlan(self, network: VxlanNetwork, vni: int, local_ip: str, port: int = 4789,
                           underlay_dev: str | None = None, mtu: int | None = None) -> bool:
        self._check(f"ensure vxlan {network.ifname}")
        dev = self.devices.get(network.network_id)
        if dev is not None and (dev.vni, dev.local, dev.port) == (vni, local_ip, port):
            dev.mtu = mtu
            return False
        self.devices[network.network_id] = FakeDevice(network, vni, local_ip, port, mtu)
        return True

    async def remove_vxlan(self, network: VxlanNetwork) -> None:
        self._check(f"remove vxlan {network.ifname}")
        self.devices.pop(network.network_id, None)

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
