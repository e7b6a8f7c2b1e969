"""Cluster mode's components (``--store etcd://``, docs/multihost.md): this host's member, its
place in the registry, and the create-once sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynetdrv.config import Config
from pynetdrv.daemon.components.base import started

if TYPE_CHECKING:
    from pynetdrv.createonce.sync import CreateOnceSync
    from pynetdrv.daemon.components.kernel import FirewallComponent
    from pynetdrv.daemon.components.local import StoreComponent
    from pynetdrv.dataplane.vxlan import VxlanDataplane
    from pynetdrv.registry.member import ClusterMember


class ClusterMemberComponent:
    """Cluster mode: this host's member (VXLAN devices fed from the registry), made here so the
    network driver can tell it about networks and endpoints; it starts watching after reconcile
    (``ClusterRegistryComponent``)."""

    name = "cluster member"

    def __init__(self, config: Config, store: StoreComponent, firewall: FirewallComponent) -> None:
        self._config, self._store, self._fw = config, store, firewall
        self.member: ClusterMember | None = None
        self._vxlan: VxlanDataplane | None = None

    def detail(self) -> str:
        return f"host {self._config.advertise_address}, VXLAN port {self._config.vxlan_port}"

    async def start(self) -> None:
        from pynetdrv.dataplane.vxlan import VxlanDataplane
        from pynetdrv.firewall.iptables import IptablesFirewall
        from pynetdrv.firewall.vxlan_guard import VxlanGuard
        from pynetdrv.registry.member import ClusterMember
        from pynetdrv.registry.registry import Registry
        from pynetdrv.store.cluster import ClusterStore

        store = self._store.store
        if not isinstance(store, ClusterStore) or not self._config.advertise_address:
            raise RuntimeError("cluster member: the store is not a cluster store (--store etcd://...)")
        pools, host, port = store.pools, self._config.advertise_address, self._config.vxlan_port
        from pynetdrv.registry.tombstone import check_tombstone

        await check_tombstone(pools.client, pools.keys, host, store.local, self._config.rejoin, str(self._config.state))
        self._vxlan = VxlanDataplane(instance=self._config.instance)
        guard = None
        if isinstance(self._fw.firewall, IptablesFirewall):  # a given (test) firewall has no iptables
            guard = VxlanGuard(self._fw.firewall, port)
        self.member = ClusterMember(
            self._vxlan, store, pools,
            lambda local, changed: Registry(pools.client, pools.keys, host, local, changed),
            host, port, guard, fast_path=self._config.fast_path)

    async def stop(self) -> None:
        if self._vxlan is not None:
            await self._vxlan.close()


class ClusterRegistryComponent:
    """Cluster mode: this host in the registry (under its lease), and the watch feeding VXLAN.
    Starts without waiting for etcd: while etcd is away the data plane keeps what it has."""

    name = "cluster registry"

    def __init__(self, config: Config, member: ClusterMemberComponent) -> None:
        self._config, self._member = config, member

    def detail(self) -> str:
        return f"{self._config.etcd}, as {self._config.advertise_address}"

    async def start(self) -> None:
        await started(self._member.member, self.name).start()

    async def stop(self) -> None:
        await started(self._member.member, self.name).stop()


class CreateOnceComponent:
    """Cluster mode: the create-once sync (pynetdrv.createonce), after serving: the networks it
    creates through the local Engine API make Docker call this daemon."""

    name = "create-once sync"

    def __init__(self, config: Config, store: StoreComponent) -> None:
        self._config, self._store = config, store
        self._sync: CreateOnceSync | None = None

    def detail(self) -> str:
        return f"Docker at {self._config.docker_socket}"

    async def start(self) -> None:
        from pynetdrv.createonce.catalog import Catalog
        from pynetdrv.createonce.engine import DockerEngine
        from pynetdrv.createonce.sync import CreateOnceSync
        from pynetdrv.store.cluster import ClusterStore

        store = self._store.store
        if not isinstance(store, ClusterStore) or not self._config.advertise_address:
            raise RuntimeError("create-once: the store is not a cluster store (--store etcd://...)")
        catalog = Catalog(store.pools.client, store.pools.keys.prefix)
        engine = DockerEngine(self._config.docker_socket, self._config.instance)
        self._sync = CreateOnceSync(catalog, engine, self._config.advertise_address)
        self._sync.start()

    async def stop(self) -> None:
        if self._sync is not None:
            await self._sync.stop()
