"""The daemon's components, in the order ``daemon_components`` starts them:

    state lock -> store -> socket -> serving modules -> dataplane -> firewall
    -> port reserver [-> cluster member] -> services -> reconcile
    [-> cluster registry] -> firewall tidy-up -> serving -> firewall keeper
    [-> create-once sync] -> restart-policy watch

(the bracketed ones in cluster mode only, ``--store etcd://``: docs/multihost.md; create-once
unless ``--no-create-once``)

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
registry watcher, a systemd notifier) is one more class in the module owning
its kind and one more entry in ``daemon_components``:

    local     state lock, store, socket, serving modules
    kernel    dataplane, firewall, port reserver, firewall tidy-up, firewall keeper
    serving   services, reconcile, serving, restart-policy watch
    cluster   cluster member, cluster registry, create-once sync
    base      what they share"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from pynetdrv.api.routes import Gate
from pynetdrv.config import Config
from pynetdrv.daemon.components.cluster import (
    ClusterMemberComponent,
    ClusterRegistryComponent,
    CreateOnceComponent,
)
from pynetdrv.daemon.components.kernel import (
    DataplaneComponent,
    FirewallComponent,
    FirewallKeeperComponent,
    FirewallTidyComponent,
    PortReserverComponent,
)
from pynetdrv.daemon.components.local import (
    ServingModulesComponent,
    SocketComponent,
    StateLockComponent,
    StoreComponent,
)
from pynetdrv.daemon.components.serving import (
    ReconcileComponent,
    RestartWatchComponent,
    ServicesComponent,
    ServingComponent,
)
from pynetdrv.daemon.lifecycle import Component

if TYPE_CHECKING:
    from pynetdrv.dataplane.base import Dataplane
    from pynetdrv.firewall.base import Firewall
    from pynetdrv.ports.reserver import PortReserver


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
    components.append(RestartWatchComponent(config, store, svc))
    return components
