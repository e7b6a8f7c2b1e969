"""The kernel-facing components: the dataplane, the firewall, the port reserver, and the two
that look after our firewall rules (the tidy-up on stop, the keeper while serving)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pynetdrv.config import Config
from pynetdrv.daemon.components.base import started
from pynetdrv.tasks import stop_task

if TYPE_CHECKING:
    from pynetdrv.daemon.components.local import StoreComponent
    from pynetdrv.daemon.components.serving import ServicesComponent
    from pynetdrv.dataplane.base import Dataplane
    from pynetdrv.firewall.base import Firewall
    from pynetdrv.ports.reserver import PortReserver
    from pynetdrv.store.base import Store

log = logging.getLogger(__name__)


class DataplaneComponent:
    name = "dataplane"

    def __init__(self, config: Config, given: Dataplane | None = None) -> None:
        self._config = config
        self._given = given
        self._dataplane: Dataplane | None = None

    @property
    def dataplane(self) -> Dataplane:
        return started(self._dataplane, self.name)

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
        return started(self._firewall, self.name)

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
        return started(self._ports, self.name)

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


def _given_or(given: object | None, default: str) -> str:
    return f"given: {type(given).__name__}" if given is not None else default
