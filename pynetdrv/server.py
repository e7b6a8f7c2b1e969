"""The daemon: lock the state, open the store, bind the unix socket, reconcile,
serve until SIGTERM/SIGINT, then drain and clean up.

The socket answers ``/Plugin.Activate`` (static) as soon as it is bound;
every other call waits at the adapter's gate (api.routes.Gate) until
reconcile is done.  dockerd needs only Activate to register the plugin, and
the calls it makes next wait for the daemon to be ready, exactly as they
would have waited for the socket before; meanwhile this process imports
what serving needs (pyroute2, the services, the wire models) in a worker
thread, so those ~0.3 s are no longer in dockerd's boot path.

Each step is a component (daemon.components), started in order and stopped
in reverse (daemon.lifecycle)."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from pynetdrv.api.routes import Gate
from pynetdrv.config import Config
from pynetdrv.daemon.components import daemon_components
from pynetdrv.daemon.http import DRAIN_SECONDS, NETWORK_SERVICE, build_app, unix_site
from pynetdrv.daemon.lifecycle import Component, running
from pynetdrv.daemon.process import raise_open_file_limit, stop_on_signals

if TYPE_CHECKING:
    from pynetdrv.dataplane.base import Dataplane
    from pynetdrv.firewall.base import Firewall
    from pynetdrv.ports.reserver import PortReserver

__all__ = ["DRAIN_SECONDS", "NETWORK_SERVICE", "build_app", "serve", "unix_site"]

log = logging.getLogger(__name__)


async def serve(
    config: Config, dataplane: Dataplane | None = None,
    firewall: Firewall | None = None, ports: PortReserver | None = None,
    listen: socket.socket | None = None,
) -> None:
    """Run until a signal arrives.  Raises lock.AlreadyRunning if another
    daemon holds the state file, or whatever stopped a component from
    starting (waiting calls then get a 503 naming it).  Without arguments
    the kernel's own dataplane, iptables and port sockets are used.
    ``listen``: the socket systemd passed (systemd.activated_unix_socket),
    served instead of binding ``config.socket`` and left open for systemd."""
    raise_open_file_limit()
    gate = Gate()

    def failed(component: Component, e: BaseException) -> None:
        gate.fail(f"start-up failed in {component.name}: {type(e).__name__}: {e}")

    with stop_on_signals() as stop:
        components = daemon_components(config, gate, dataplane, firewall, ports, listen)
        async with running(components, on_start_failure=failed):
            await stop.wait()
            log.info("shutting down")
