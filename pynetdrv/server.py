"""The daemon: lock the state, open the store, reconcile, serve on the unix
socket until SIGTERM/SIGINT, then drain and clean up."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
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
from pynetdrv.firewall.base import Firewall
from pynetdrv.ipam.service import IpamService
from pynetdrv.lock import StateLock
from pynetdrv.ports.reserver import PortReserver
from pynetdrv.reconcile import reconcile
from pynetdrv.store.base import Store

log = logging.getLogger(__name__)

#: How long in-flight calls may take to finish after SIGTERM.
DRAIN_SECONDS = 10.0
NETWORK_SERVICE = web.AppKey("network", NetworkService)


def build_app(
    store: Store, dataplane: Dataplane, config: Config,
    firewall: Firewall | None = None, ports: PortReserver | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    network = NetworkService(store, dataplane, firewall, ports)
    ipam = IpamService(store, config, dataplane.host_routes)
    add_routes(app, plugin_routes(network, ipam))
    app[NETWORK_SERVICE] = network
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
        # Created 0660 from the start: no moment where the umask leaves it
        # open to every user (start-up is single-threaded here).
        umask = os.umask(0o117)
        try:
            await web.UnixSite(runner, str(path)).start()
        finally:
            os.umask(umask)
        os.chmod(path, 0o660)
        yield
    finally:
        await runner.cleanup()
        path.unlink(missing_ok=True)


async def serve(
    config: Config, dataplane: Dataplane | None = None,
    firewall: Firewall | None = None, ports: PortReserver | None = None,
) -> None:
    """Run until a signal arrives.  Raises lock.AlreadyRunning if another
    daemon holds the state file.  Without arguments the kernel's own
    dataplane, iptables and port sockets are used."""
    from pynetdrv.dataplane.netlink import NetlinkDataplane
    from pynetdrv.firewall.iptables import IptablesFirewall
    from pynetdrv.ports.reserver import SocketReserver
    from pynetdrv.store.sqlite import SQLiteStore

    _raise_open_file_limit()
    lock = StateLock(config.state)
    lock.acquire()
    store = SQLiteStore(config.state)
    dp = dataplane or NetlinkDataplane(instance=config.instance)
    fw = firewall or IptablesFirewall(instance=config.instance)
    held = ports or SocketReserver()
    try:
        await store.open()
        app = build_app(store, dp, config, fw, held)
        external = app[NETWORK_SERVICE].external
        await reconcile(store, dp, external)
        with _stop_on_signals() as stop:
            # The firewall is compared with the state and repaired every so often
            # (an administrator's `iptables -F`, a firewall manager's reload).
            keeper = asyncio.create_task(external.keep(config.firewall_check_seconds)) \
                if config.firewall_check_seconds > 0 else None
            try:
                await _serve_until(stop, app, config)
            finally:
                if keeper is not None:
                    keeper.cancel()
        await _tidy(store, fw)
    finally:
        held.close()
        await dp.close()
        await store.close()
        lock.release()


async def _serve_until(stop: asyncio.Event, app: web.Application, config: Config) -> None:
    async with unix_site(app, config.socket):
        log.info("pynetdrv serving on %s (state %s)", config.socket, config.state)
        await stop.wait()
        log.info("shutting down")


async def _tidy(store: Store, firewall: Firewall) -> None:
    """With no network left nothing needs our firewall rules: leave the
    host's iptables as we found it.  With networks, everything stays, so
    running containers keep their connectivity while we are down."""
    if await store.list_networks():
        return
    try:
        await firewall.remove_all()
    except DataplaneError as e:
        log.warning("could not remove firewall rules on shutdown: %s", e)


def _raise_open_file_limit() -> None:
    """Each published port holds a socket: lift the soft limit on open files
    (often 1024) to the hard one, as dockerd does for itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
