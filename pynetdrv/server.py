"""The daemon: lock the state, open the store, reconcile, serve on the unix
socket until SIGTERM/SIGINT, then drain and clean up."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from aiohttp import web

from pynetdrv.api.plugin import plugin_routes
from pynetdrv.api.routes import MAX_BODY, add_routes
from pynetdrv.config import Config
from pynetdrv.dataplane.base import Dataplane, DataplaneError
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.lock import StateLock
from pynetdrv.reconcile import reconcile
from pynetdrv.store.base import Store

log = logging.getLogger(__name__)

#: How long in-flight calls may take to finish after SIGTERM.
DRAIN_SECONDS = 10.0


def build_app(store: Store, dataplane: Dataplane, config: Config) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    network = NetworkService(store, dataplane)
    ipam = IpamService(store, config, dataplane.host_routes)
    add_routes(app, plugin_routes(network, ipam))
    return app


@asynccontextmanager
async def unix_site(app: web.Application, path: Path) -> AsyncIterator[None]:
    """Serve ``app`` on ``path`` (mode 0660); remove the socket afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # We hold the state lock, so a socket file still here is a dead
    # instance's leftover, not a live daemon's.
    path.unlink(missing_ok=True)
    # auto_decompress off: Docker never compresses a request, so a
    # Content-Encoding header changes nothing and the body is read as sent.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=DRAIN_SECONDS, auto_decompress=False)
    await runner.setup()
    try:
        await web.UnixSite(runner, str(path)).start()
        os.chmod(path, 0o660)
        yield
    finally:
        await runner.cleanup()
        path.unlink(missing_ok=True)


def _default_dataplane(instance: str) -> Dataplane:
    from pynetdrv.dataplane.firewall import IptablesFirewall
    from pynetdrv.dataplane.netlink import NetlinkDataplane

    return NetlinkDataplane(firewall=IptablesFirewall(instance=instance), instance=instance)


async def serve(config: Config, dataplane: Dataplane | None = None) -> None:
    """Run until a signal arrives.  Raises lock.AlreadyRunning if another
    daemon holds the state file."""
    from pynetdrv.store.sqlite import SQLiteStore

    lock = StateLock(config.state)
    lock.acquire()
    store = SQLiteStore(config.state)
    dp = dataplane or _default_dataplane(config.instance)
    try:
        await store.open()
        await reconcile(store, dp)
        with _stop_on_signals() as stop:
            await _serve_until(stop, build_app(store, dp, config), config)
        await _tidy(store, dp)
    finally:
        await dp.close()
        await store.close()
        lock.release()


async def _serve_until(stop: asyncio.Event, app: web.Application, config: Config) -> None:
    async with unix_site(app, config.socket):
        log.info("pynetdrv serving on %s (state %s)", config.socket, config.state)
        await stop.wait()
        log.info("shutting down")


async def _tidy(store: Store, dp: Dataplane) -> None:
    """With no network left nothing needs our firewall rules: leave the
    host's iptables as we found it.  With networks, everything stays, so
    running containers keep their connectivity while we are down."""
    if await store.list_networks():
        return
    try:
        await dp.remove_firewall()
    except DataplaneError as e:
        log.warning("could not remove firewall rules on shutdown: %s", e)


@contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM/SIGINT; the handlers go when the block ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
