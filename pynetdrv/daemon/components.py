"""The daemon's components, in the order ``daemon_components`` starts them:

    state lock -> store -> socket -> serving modules -> dataplane -> firewall
    -> port reserver [-> cluster member] -> services -> reconcile
    [-> cluster registry] -> firewall tidy-up -> serving -> firewall keeper

(the bracketed two in cluster mode only, ``--store etcd://``: docs/multihost.md)

The socket comes right after the lock and the store: Docker's
``/Plugin.Activate`` is answered while the rest starts, and every other call
waits at the gate until ``serving`` opens it (after reconcile).  Stopping
runs backwards: the keeper ends, ``serving`` stops taking calls and lets the
in-flight ones finish, then, with no network left, our firewall rules go,
then the kernel parts close, the store, the lock.

A component needing another's product takes that component in its
constructor and reads what it made once started, so what depends
on what is in the signatures.  Nothing here imports pyroute2, pydantic or the
services at module level: they load in the worker thread of ``serving
modules`` (see process.import_serving_modules).  A new part (a multi-host
registry watcher, a systemd notifier) is one more class here and one more
entry in ``daemon_components``."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, TypeVar

from pynetdrv.api.routes import Gate
from pynetdrv.config import Config
from pynetdrv.daemon.http import UnixSocket, gated_app, services
from pynetdrv.daemon.lifecycle import Component
from pynetdrv.daemon.process import import_serving_modules
from pynetdrv.lock import StateLock
from pynetdrv.tasks import stop_task

if TYPE_CHECKING:
    from pynetdrv.createonce.sync import CreateOnceSync
    from pynetdrv.dataplane.base import Dataplane
    from pynetdrv.dataplane.vxlan import VxlanDataplane
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.firewall.base import Firewall
    from pynetdrv.ipam.service import IpamService
    from pynetdrv.ports.reserver import PortReserver
    from pynetdrv.registry.member import ClusterMember
    from pynetdrv.store.base import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


def _started(value: T | None, name: str) -> T:
    if value is None:
        raise RuntimeError(f"{name} is used before it was started")
    return value


class StateLockComponent:
    """One daemon per state file (see lock.StateLock)."""

    name = "state lock"

    def __init__(self, config: Config) -> None:
        self._lock = StateLock(config.state)

    def detail(self) -> str:
        return str(self._lock.path)

    async def start(self) -> None:
        self._lock.acquire()

    async def stop(self) -> None:
        self._lock.release()


class StoreComponent:
    name = "store"

    def __init__(self, config: Config) -> None:
        self._config = config
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        return _started(self._store, self.name)

    def detail(self) -> str:
        return self._config.store_url

    async def start(self) -> None:
        from pynetdrv.store.open import open_store

        # A state file we cannot open fails here, before Docker sees a socket.
        self._store = await open_store(self._config)
        _record_cluster_settings(self._config)

    async def stop(self) -> None:
        await self.store.close()


def _record_cluster_settings(config: Config) -> None:
    """Where status and check find etcd (``cluster.settings``): recorded at every start.  A file that
    cannot be written costs status/check their cluster view (they say so), not the daemon its start."""
    from pynetdrv.cluster.settings import ClusterSettings, save_settings

    c = config
    try:
        save_settings(c.state, None if not c.etcd or not c.advertise_address else ClusterSettings(
            c.etcd, c.advertise_address, c.vxlan_port, *(None if p is None else str(p)
                                                           for p in (c.etcd_cacert, c.etcd_cert, c.etcd_key))))
    except OSError as e:
        log.warning("cluster settings for status/check not recorded next to %s: %s", c.state, e)


class SocketComponent:
    """The unix socket, with Activate answered and the rest gated: bound at
    ``config.socket``, or, when systemd passed one (``listen``), that one."""

    name = "socket"

    def __init__(self, config: Config, gate: Gate, listen: socket.socket | None = None) -> None:
        self._socket = UnixSocket(gated_app(gate), config.socket, adopted=listen)

    def detail(self) -> str:
        return f"{self._socket.path}, passed by systemd" if self._socket.adopted else str(self._socket.path)

    async def start(self) -> None:
        await self._socket.open()
        if self._socket.adopted:
            log.info("listening on %s: the socket passed by systemd (socket activation); it stays after stop",
                     self._socket.path)
        else:
            log.info("listening on %s: bound by pynetdrv (no socket activation)", self._socket.path)

    async def stop(self) -> None:
        await self._socket.close()  # already done by ``serving`` after a full start

    async def drain(self) -> None:
        """Stop taking calls; let those in flight finish (http.DRAIN_SECONDS)."""
        await self._socket.close()


class ServingModulesComponent:
    """Imports what serving needs, off the event loop so Activate is answered meanwhile."""

    name = "serving modules"

    def detail(self) -> str:
        return "pyroute2, services, wire models; in a worker thread"

    async def start(self) -> None:
        await asyncio.to_thread(import_serving_modules)

    async def stop(self) -> None:
        pass


class DataplaneComponent:
    name = "dataplane"

    def __init__(self, config: Config, given: Dataplane | None = None) -> None:
        self._config = config
        self._given = given
        self._dataplane: Dataplane | None = None

    @property
    def dataplane(self) -> Dataplane:
        return _started(self._dataplane, self.name)

    def detail(self) -> str:
        return _given_or(self._given, f"netlink, instance {self._config.instance}")

    async def start(self) -> None:
        if self._given is not None:
            self._dataplane = self._given
            return
        from pynetdrv.dataplane.netlink import NetlinkDataplane

        self._dataplane = NetlinkDataplane(instance=self._config.instance)

    async def stop(self) -> None:
        await self.dataplane.close()


class FirewallComponent:
    name = "firewall"

    def __init__(self, config: Config, given: Firewall | None = None) -> None:
        self._config = config
        self._given = given
        self._firewall: Firewall | None = None

    @property
    def firewall(self) -> Firewall:
        return _started(self._firewall, self.name)

    def detail(self) -> str:
        return _given_or(self._given, f"iptables, instance {self._config.instance}")

    async def start(self) -> None:
        if self._given is not None:
            self._firewall = self._given
            return
        from pynetdrv.firewall.iptables import IptablesFirewall

        self._firewall = IptablesFirewall(instance=self._config.instance)

    async def stop(self) -> None:
        pass  # rules stay while networks exist: see FirewallTidyComponent


class PortReserverComponent:
    """Holds published host ports as sockets, so no other process takes them."""

    name = "port reserver"

    def __init__(self, given: PortReserver | None = None) -> None:
        self._given = given
        self._ports: PortReserver | None = None

    @property
    def ports(self) -> PortReserver:
        return _started(self._ports, self.name)

    def detail(self) -> str:
        return _given_or(self._given, "sockets")

    async def start(self) -> None:
        if self._given is not None:
            self._ports = self._given
            return
        from pynetdrv.ports.reserver import SocketReserver

        self._ports = SocketReserver()

    async def stop(self) -> None:
        self.ports.close()


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
            host, port, guard)

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
        await _started(self._member.member, self.name).start()

    async def stop(self) -> None:
        await _started(self._member.member, self.name).stop()


class ServicesComponent:
    """The network driver and IPAM services on top of the parts."""

    name = "services"

    def __init__(self, config: Config, store: StoreComponent, dataplane: DataplaneComponent,
                 firewall: FirewallComponent, ports: PortReserverComponent,
                 cluster: ClusterMemberComponent | None = None) -> None:
        self._config = config
        self._store, self._dp, self._fw, self._ports = store, dataplane, firewall, ports
        self._cluster = cluster
        self._services: tuple[NetworkService, IpamService] | None = None

    @property
    def services(self) -> tuple[NetworkService, IpamService]:
        return _started(self._services, self.name)

    def detail(self) -> str:
        return ""

    async def start(self) -> None:
        member = _started(self._cluster.member, self._cluster.name) if self._cluster is not None else None
        self._services = services(
            self._store.store, self._dp.dataplane, self._config, self._fw.firewall, self._ports.ports, member)

    async def stop(self) -> None:
        pass


class ReconcileComponent:
    """Make the kernel, the held ports and the firewall match the store."""

    name = "reconcile"

    def __init__(self, store: StoreComponent, dataplane: DataplaneComponent, services: ServicesComponent) -> None:
        self._store, self._dp, self._services = store, dataplane, services

    def detail(self) -> str:
        return ""

    async def start(self) -> None:
        from pynetdrv.reconcile import reconcile

        network, _ = self._services.services
        await reconcile(self._store.store, self._dp.dataplane, network.external)

    async def stop(self) -> None:
        pass


class FirewallTidyComponent:
    """On shutdown after serving: with no network left nothing needs our
    firewall rules, so the host's iptables is left as we found it.  With
    networks everything stays, so running containers keep their
    connectivity while we are down.  (Started after reconcile: a daemon that
    failed to start leaves the rules alone.)"""

    name = "firewall tidy-up"

    def __init__(self, store: StoreComponent, firewall: FirewallComponent) -> None:
        self._store, self._fw = store, firewall

    def detail(self) -> str:
        return "on stop: remove our rules if no network is left"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        await tidy(self._store.store, self._fw.firewall)


async def tidy(store: Store, firewall: Firewall) -> None:
    from pynetdrv.dataplane.base import DataplaneError

    if await store.list_networks():
        return
    try:
        await firewall.remove_all()
    except DataplaneError as e:
        log.warning("could not remove firewall rules on shutdown: %s", e)


class ServingComponent:
    """Opens the gate: calls waiting since the socket was bound go through.
    Stopping drains the socket (no new calls, in-flight ones finish) before
    anything they use is stopped."""

    name = "serving"

    def __init__(self, config: Config, gate: Gate, socket: SocketComponent, services: ServicesComponent) -> None:
        self._config, self._gate, self._socket, self._services = config, gate, socket, services

    def detail(self) -> str:
        return str(self._config.socket)

    async def start(self) -> None:
        from pynetdrv.api.plugin import plugin_routes

        self._gate.open(plugin_routes(*self._services.services))
        log.info("pynetdrv serving on %s (state %s)", self._config.socket, self._config.state)
        _tell_systemd("READY=1")  # Type=notify units: dockerd may start after this (contrib/systemd)

    async def stop(self) -> None:
        _tell_systemd("STOPPING=1")
        await self._socket.drain()


def _tell_systemd(state: str) -> None:
    from pynetdrv.systemd import notify

    try:
        notify(state)
    except (OSError, ValueError) as e:
        log.warning("could not tell systemd %s: %s", state, e)


class FirewallKeeperComponent:
    """Every so often compares the firewall with the state and repairs it
    (an administrator's `iptables -F`, a firewall manager's reload)."""

    name = "firewall keeper"

    def __init__(self, interval: float, services: ServicesComponent) -> None:
        self._interval = interval
        self._services = services
        self._task: asyncio.Task[None] | None = None

    def detail(self) -> str:
        return f"every {self._interval:g} s"

    async def start(self) -> None:
        network, _ = self._services.services
        self._task = asyncio.create_task(network.external.keep(self._interval), name="firewall keeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)


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


def daemon_components(
    config: Config, gate: Gate, dataplane: Dataplane | None = None,
    firewall: Firewall | None = None, ports: PortReserver | None = None,
    listen: socket.socket | None = None,
) -> list[Component]:
    """The daemon, in start order.  Without ``dataplane``/``firewall``/``ports``
    the kernel's own are used (netlink, iptables, sockets); ``listen`` is a
    socket passed by systemd, served instead of binding ``config.socket``."""
    store = StoreComponent(config)
    sock = SocketComponent(config, gate, listen)
    dp = DataplaneComponent(config, dataplane)
    fw = FirewallComponent(config, firewall)
    held = PortReserverComponent(ports)
    member = ClusterMemberComponent(config, store, fw) if config.etcd else None
    svc = ServicesComponent(config, store, dp, fw, held, member)
    components: list[Component] = [
        StateLockComponent(config), store, sock, ServingModulesComponent(), dp, fw, held,
        *([member] if member else []), svc, ReconcileComponent(store, dp, svc),
        *([ClusterRegistryComponent(config, member)] if member else []),
        FirewallTidyComponent(store, fw), ServingComponent(config, gate, sock, svc),
        *([CreateOnceComponent(config, store)] if member and config.create_once else []),
    ]
    if config.firewall_check_seconds > 0:
        components.append(FirewallKeeperComponent(config.firewall_check_seconds, svc))
    return components


def _given_or(given: object | None, default: str) -> str:
    return f"given: {type(given).__name__}" if given is not None else default
