"""The HTTP side: the plugin's app and the unix socket it is served on.

The daemon binds its socket before it has reconciled (see server.serve):
``/Plugin.Activate`` is answered at once and every other call waits at the
``Gate`` until the daemon opens it."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from pynetdrv.api.plugin import ACTIVATE, PATHS, plugin_routes
from pynetdrv.api.routes import MAX_BODY, Gate, add_open_routes, add_routes
from pynetdrv.config import Config

if TYPE_CHECKING:
    from pynetdrv.dataplane.base import Dataplane
    from pynetdrv.driver.cluster_hooks import ClusterHooks
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.firewall.base import Firewall
    from pynetdrv.ipam.service import IpamService
    from pynetdrv.ports.reserver import PortReserver
    from pynetdrv.returning.keep import ReturningAddresses
    from pynetdrv.store.base import Store

#: How long in-flight calls may take to finish after SIGTERM.
DRAIN_SECONDS = 10.0
NETWORK_SERVICE: web.AppKey[NetworkService] = web.AppKey("network")


def services(
    store: Store, dataplane: Dataplane, config: Config, firewall: Firewall, ports: PortReserver,
    cluster: ClusterHooks | None = None, returning: ReturningAddresses | None = None,
) -> tuple[NetworkService, IpamService]:
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.ipam.service import IpamService

    return (NetworkService(store, dataplane, firewall, ports, cluster),
            IpamService(store, config, dataplane.host_routes, returning))


def build_app(
    store: Store, dataplane: Dataplane, config: Config, firewall: Firewall, ports: PortReserver,
) -> web.Application:
    """The plugin's app with every call ready at once (tests, tools)."""
    app = web.Application(client_max_size=MAX_BODY)
    network, ipam = services(store, dataplane, config, firewall, ports)
    add_open_routes(app, plugin_routes(network, ipam))
    app[NETWORK_SERVICE] = network
    return app


def gated_app(gate: Gate) -> web.Application:
    """The daemon's app: Activate at once, every other call through ``gate``."""
    app = web.Application(client_max_size=MAX_BODY)
    add_routes(app, PATHS, gate, early=[ACTIVATE])
    return app


class UnixSocket:
    """``app`` served on a unix socket between ``open`` and ``close``: one
    that ``open`` binds at ``path`` (mode 0660, removed on close), or the
    listening socket systemd passed (``adopted``, see systemd.activated_unix_socket),
    served as it is and left in place on close: the socket unit owns its
    file and keeps accepting while we are down."""

    def __init__(self, app: web.Application, path: Path, adopted: socket.socket | None = None) -> None:
        self._app = app
        self.path = path
        self._adopted = adopted
        self._runner: web.AppRunner | None = None

    @property
    def adopted(self) -> bool:
        return self._adopted is not None

    async def open(self) -> None:
        # auto_decompress off: Docker never compresses a request, so a
        # Content-Encoding header changes nothing and the body is read as sent.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=DRAIN_SECONDS, auto_decompress=False)
        await runner.setup()
        self._runner = runner
        try:
            if self._adopted is not None:
                # Never an IP socket (systemd.serving_socket chose it; checked
                # again here, where it is served).
                if self._adopted.family != socket.AF_UNIX:
                    raise ValueError(f"refusing to serve a passed {self._adopted.family.name} socket: unix only")
                await web.SockSite(runner, self._adopted).start()
            else:
                await self._bind(runner)
        except BaseException:
            await self.close()
            raise

    async def _bind(self, runner: web.AppRunner) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # We hold the state lock, so a socket file still here is a dead
        # instance's leftover, not a live daemon's.
        path.unlink(missing_ok=True)
        # Created 0660 from the start: no moment where the umask leaves it
        # open to every user (start-up is single-threaded here).
        umask = os.umask(0o117)
        try:
            await web.UnixSite(runner, str(path)).start()
        finally:
            os.umask(umask)
        os.chmod(path, 0o660)

    async def close(self) -> None:
        """Stop accepting, let in-flight calls finish (up to DRAIN_SECONDS),
        remove the socket file if we bound it.  Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await runner.cleanup()
        finally:
            if self._adopted is None:
                self.path.unlink(missing_ok=True)


@asynccontextmanager
async def unix_site(app: web.Application, path: Path) -> AsyncIterator[None]:
    """Serve ``app`` on ``path`` (mode 0660); remove the socket afterwards."""
    sock = UnixSocket(app, path)
    await sock.open()
    try:
        yield
    finally:
        await sock.close()
