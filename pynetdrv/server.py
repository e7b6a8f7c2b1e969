"""The daemon: lock the state, open the store, bind the unix socket, reconcile,
serve until SIGTERM/SIGINT, then drain and clean up.

The socket answers ``/Plugin.Activate`` (static) as soon as it is bound;
every other call waits at the adapter's gate (api.routes.Gate) until
reconcile is done.  dockerd needs only Activate to register the plugin, and
the calls it makes next wait for the daemon to be ready, exactly as they
would have waited for the socket before; meanwhile this process imports
what serving needs (pyroute2, the services, the wire models) in a worker
thread, so those ~0.3 s are no longer in dockerd's boot path."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from pynetdrv.api.plugin import ACTIVATE, PATHS, plugin_routes
from pynetdrv.api.routes import MAX_BODY, Gate, add_open_routes, add_routes
from pynetdrv.config import Config
from pynetdrv.lock import StateLock

if TYPE_CHECKING:
    from pynetdrv.dataplane.base import Dataplane
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.firewall.base import Firewall
    from pynetdrv.ipam.service import IpamService
    from pynetdrv.ports.reserver import PortReserver
    from pynetdrv.store.base import Store

log = logging.getLogger(__name__)

#: How long in-flight calls may take to finish after SIGTERM.
DRAIN_SECONDS = 10.0
NETWORK_SERVICE: web.AppKey[NetworkService] = web.AppKey("network")


def _services(
    store: Store, dataplane: Dataplane, config: Config,
    firewall: Firewall | None = None, ports: PortReserver | None = None,
) -> tuple[NetworkService, IpamService]:
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.ipam.service import IpamService

    return NetworkService(store, dataplane, firewall, ports), IpamService(store, config, dataplane.host_routes)


def build_app(
    store: Store, dataplane: Dataplane, config: Config,
    firewall: Firewall | None = None, ports: PortReserver | None = None,
) -> web.Application:
    """The plugin's app with every call ready at once (tests, tools)."""
    app = web.Application(client_max_size=MAX_BODY)
    network, ipam = _services(store, dataplane, config, firewall, ports)
    add_open_routes(app, plugin_routes(network, ipam))
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
    from pynetdrv.store.open import open_store

    _raise_open_file_limit()
    lock = StateLock(config.state)
    lock.acquire()
    store: Store | None = None
    dp, held = dataplane, ports
    try:
        # A state file we cannot open fails here, before Docker sees a socket.
        store = await open_store(config)
        gate = Gate()
        app = web.Application(client_max_size=MAX_BODY)
        add_routes(app, PATHS, gate, early=[ACTIVATE])
        with _stop_on_signals() as stop:
            async with unix_site(app, config.socket):
                try:
                    # Off the event loop, so Activate is answered meanwhile.
                    await asyncio.to_thread(_import_serving_modules)
                    dp, fw, held = _kernel_parts(config, dataplane, firewall, ports)
                    network, ipam = _services(store, dp, config, fw, held)
                    from pynetdrv.reconcile import reconcile

                    await reconcile(store, dp, network.external)
                except BaseException as e:
                    gate.fail(f"start-up failed: {type(e).__name__}: {e}")
                    raise
                gate.open(plugin_routes(network, ipam))
                log.info("pynetdrv serving on %s (state %s)", config.socket, config.state)
                # The firewall is compared with the state and repaired every so often
                # (an administrator's `iptables -F`, a firewall manager's reload).
                keeper = asyncio.create_task(network.external.keep(config.firewall_check_seconds)) \
                    if config.firewall_check_seconds > 0 else None
                try:
                    await stop.wait()
                    log.info("shutting down")
                finally:
                    if keeper is not None:
                        keeper.cancel()
        await _tidy(store, fw)
    finally:
        if held is not None:
            held.close()
        if dp is not None:
            await dp.close()
        if store is not None:
            await store.close()
        lock.release()


def _import_serving_modules() -> None:
    """What serving needs beyond the socket: pyroute2 alone is ~0.1-0.2 s.
    The wire models' validators (built on first use, see api.base_model) are
    built here too, so that the first call of each kind does not pay for it."""
    import pynetdrv.dataplane.netlink
    import pynetdrv.driver.service
    import pynetdrv.firewall.iptables
    import pynetdrv.ipam.service
    import pynetdrv.ports.reserver
    import pynetdrv.reconcile  # noqa: F401
    from pynetdrv.api import base_model, ipam_models, network_models
    from pynetdrv.api.base_model import Wire

    for module in (base_model, ipam_models, network_models):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Wire) and value.__module__ == module.__name__:
                value.model_rebuild()


def _kernel_parts(
    config: Config, dataplane: Dataplane | None, firewall: Firewall | None, ports: PortReserver | None,
) -> tuple[Dataplane, Firewall, PortReserver]:
    from pynetdrv.dataplane.netlink import NetlinkDataplane
    from pynetdrv.firewall.iptables import IptablesFirewall
    from pynetdrv.ports.reserver import SocketReserver

    return (dataplane or NetlinkDataplane(instance=config.instance),
            firewall or IptablesFirewall(instance=config.instance), ports or SocketReserver())


async def _tidy(store: Store, firewall: Firewall) -> None:
    """With no network left nothing needs our firewall rules: leave the
    host's iptables as we found it.  With networks, everything stays, so
    running containers keep their connectivity while we are down."""
    from pynetdrv.dataplane.base import DataplaneError

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
