"""The services on top of the parts, reconcile, and serving: opening the gate (and telling
systemd), and on stop draining the socket."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pynetdrv.api.routes import Gate
from pynetdrv.config import Config
from pynetdrv.daemon.components.base import started
from pynetdrv.daemon.http import services

if TYPE_CHECKING:
    from pynetdrv.daemon.components.cluster import ClusterMemberComponent
    from pynetdrv.daemon.components.kernel import DataplaneComponent, FirewallComponent, PortReserverComponent
    from pynetdrv.daemon.components.local import SocketComponent, StoreComponent
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.ipam.service import IpamService
    from pynetdrv.returning.keep import ReturningAddresses
    from pynetdrv.returning.watch import RestartWatch

log = logging.getLogger(__name__)


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
        return started(self._services, self.name)

    @property
    def returning(self) -> ReturningAddresses:
        return self.services[1].returning

    def detail(self) -> str:
        return ""

    async def start(self) -> None:
        from pynetdrv.returning.keep import ReturningAddresses
        from pynetdrv.returning.record import load, record_path

        member = started(self._cluster.member, self._cluster.name) if self._cluster is not None else None
        returning = ReturningAddresses(load(record_path(self._config.state)))
        self._services = services(
            self._store.store, self._dp.dataplane, self._config, self._fw.firewall, self._ports.ports, member,
            returning)

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


class RestartWatchComponent:
    """Keeps the record of which addresses belong to containers dockerd starts again
    (pynetdrv.returning), from the Engine API; after serving, never blocking a call."""

    name = "restart-policy watch"

    def __init__(self, config: Config, store: StoreComponent, services: ServicesComponent) -> None:
        self._config, self._store, self._services = config, store, services
        self._watch: RestartWatch | None = None

    def detail(self) -> str:
        return f"Docker at {self._config.docker_socket}"

    async def start(self) -> None:
        from pynetdrv.returning.record import record_path
        from pynetdrv.returning.watch import DockerContainers, RestartWatch

        store = self._store.store

        async def our_networks() -> set[str]:
            return {n.network_id for n in await store.list_networks()}

        self._watch = RestartWatch(DockerContainers(self._config.docker_socket), our_networks,
                                   record_path(self._config.state), self._services.returning)
        self._watch.start()

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()


def _tell_systemd(state: str) -> None:
    from pynetdrv.systemd import notify

    try:
        notify(state)
    except (OSError, ValueError) as e:
        log.warning("could not tell systemd %s: %s", state, e)
