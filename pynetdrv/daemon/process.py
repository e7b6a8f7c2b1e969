"""Process plumbing of the daemon: signals, the open-file limit, and the
imports that serving needs beyond the socket."""

from __future__ import annotations

import asyncio
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager


def raise_open_file_limit() -> None:
    """Each published port holds a socket: lift the soft limit on open files
    (often 1024) to the hard one, as dockerd does for itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
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


def import_serving_modules() -> None:
    """What serving needs beyond the socket: pyroute2 alone is ~0.1-0.2 s.
    The wire models' validators (built on first use, see api.base_model) are
    built here too, so that the first call of each kind does not pay for it.
    Run in a worker thread while the socket already answers Activate."""
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
