"""``pynetdrv status``: what the state file holds, for people.

Read-only and safe while the daemon runs (SQLite WAL lets readers in beside
the writer); it never touches the kernel.  Docker's network names, when the
caller read them (docker_names.py), appear next to the IDs.
"""

from __future__ import annotations

from collections.abc import Mapping

import netaddr

from pynetdrv.docker_names import network_label
from pynetdrv.ipam.addresses import usable_bounds
from pynetdrv.ipam.allocator import range_bounds
from pynetdrv.store.base import Store


async def render_status(store: Store, names: Mapping[str, str] | None = None) -> str:
    networks = await store.list_networks()
    labels = {n.network_id: network_label(n.network_id, names) for n in networks}
    width = max([13, *(len(label) + 1 for label in labels.values())])
    lines = [f"{'NETWORK':<{width}} BRIDGE           MTU    GATEWAYS                          ENDPOINTS"]
    for net in networks:
        endpoints = await store.list_endpoints(net.network_id)
        joined = sum(1 for e in endpoints if e.sandbox_key)
        flags = "".join((" internal" if net.internal else "", "" if net.masquerade else " no-masquerade",
                         "" if net.icc else " no-icc"))
        lines.append(
            f"{labels[net.network_id]:<{width}} {net.bridge:<16} {net.mtu or '-':<6} "
            f"{', '.join(net.gateways) or '-':<33} {len(endpoints)} ({joined} joined){flags}"
        )
    lines += ["", "POOL                          RANGE                 USED / ASSIGNABLE   ID"]
    for pool in await store.list_pools():
        used = len(await store.allocations(pool.pool_id))
        first, last = usable_bounds(netaddr.IPNetwork(pool.cidr))
        lo, hi = range_bounds(pool)
        auto = " (automatic)" if pool.automatic else ""
        lines.append(
            f"{pool.cidr:<29} {pool.subpool or 'whole subnet':<21} "
            f"{used} / {last - first + 1} (range {max(hi - lo + 1, 0)}){auto}   {pool.pool_id}"
        )
    lines += ["", "PUBLISHED                     CONTAINER             ENDPOINT"]
    for ep in await store.list_endpoints():
        for m in ep.ports:
            lines.append(f"{m.host_ip}:{m.host_port}/{m.proto:<12} {m.container_ip}:{m.container_port:<12} "
                         f"{ep.endpoint_id[:12]}")
    return "\n".join(lines)
