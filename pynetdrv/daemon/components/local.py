"""The components that need neither the kernel nor the services: the state lock, the store,
the socket (Activate answered, the rest gated) and the import of the serving modules."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from pynetdrv.api.routes import Gate
from pynetdrv.config import Config
from pynetdrv.daemon.components.base import started
from pynetdrv.daemon.http import UnixSocket, gated_app
from pynetdrv.daemon.process import import_serving_modules
from pynetdrv.lock import StateLock

if TYPE_CHECKING:
    from pynetdrv.store.base import Store

log = logging.getLogger(__name__)


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
        return started(self._store, self.name)

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
