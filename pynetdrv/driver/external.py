"""External connectivity: published ports and the firewall that goes with
every network.

The firewall is declarative: after any change to networks or published ports
the whole desired state is derived from the store and handed to the Firewall
(``sync``).  Concurrent callers share one apply when they can: a sync that
starts after a caller's store write covers that caller too, so a burst of
container starts costs a few applies, not one each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from contextlib import AsyncExitStack
from typing import Any

import netaddr

from pynetdrv.firewall.base import Firewall
from pynetdrv.firewall.model import FirewallState, NetworkRules, PortRule
from pynetdrv.ports.bindings import PortRequest, parse_portmap
from pynetdrv.ports.reserver import PortReserver
from pynetdrv.store.base import EndpointRecord, NetworkRecord, PortMapping, Store

log = logging.getLogger(__name__)


def firewall_state(networks: list[NetworkRecord], endpoints: list[EndpointRecord]) -> FirewallState:
    bridges = {n.network_id: n.bridge for n in networks}
    return FirewallState(
        networks=tuple(
            NetworkRules(bridge=n.bridge, subnets=n.pools, internal=n.internal, masquerade=n.masquerade, icc=n.icc)
            for n in networks
        ),
        ports=tuple(
            PortRule(m.proto, m.host_ip, m.host_port, m.container_ip, m.container_port, bridges[ep.network_id])
            for ep in endpoints
            if ep.network_id in bridges
            for m in ep.ports
        ),
    )


class External:
    def __init__(self, store: Store, firewall: Firewall, reserver: PortReserver) -> None:
        self._store = store
        self._firewall = firewall
        self._ports = reserver
        self._lock = asyncio.Lock()
        self._wanted = 0
        self._done = 0

    async def sync(self) -> None:
        """Make the firewall match the store (after the caller's write)."""
        self._wanted += 1
        mine = self._wanted
        async with self._lock:
            if self._done >= mine:
                return  # an apply that began after our write covered it
            target = self._wanted
            state = firewall_state(await self._store.list_networks(), await self._store.list_endpoints())
            await self._firewall.apply(state)
            self._done = target

    async def keep(self, interval: float) -> None:
        """Until cancelled: every ``interval`` seconds compare the firewall
        with the store and re-apply when they differ."""
        while True:
            await asyncio.sleep(interval)
            try:
                state = firewall_state(await self._store.list_networks(), await self._store.list_endpoints())
                drift = await self._firewall.drift(state)
                if drift:
                    log.warning("firewall differs from pynetdrv's state (%s); re-applying", "; ".join(drift[:5]))
                    await self.sync()
            except Exception as e:
                log.error("firewall check failed: %s", e)

    async def publish(self, net: NetworkRecord, ep: EndpointRecord, options: dict[str, Any]) -> EndpointRecord:
        """Reserve the host ports ``options`` ask for, record them and open
        them in the firewall; all or nothing.  Returns the stored endpoint."""
        requests = parse_portmap(options, net.host_binding_ipv4)
        container_ip = str(netaddr.IPNetwork(ep.address).ip) if ep.address else ""
        if requests and (net.internal or not container_ip):
            why = "the network is internal" if net.internal else "the endpoint has no IPv4 address"
            log.warning("endpoint %s: not publishing %d port(s): %s", ep.endpoint_id[:12], len(requests), why)
            requests = []
        if ep.external == dict(options) and ep.ports:
            return ep  # a retry of what is already in place
        async with AsyncExitStack() as undo:
            if ep.ports:  # re-programmed with other bindings: the old ones go
                await self.unpublish(ep)
                undo.push_async_callback(self._restore_ports, ep)
            mappings = []
            for request in requests:
                mapping = await self._reserve(request, container_ip)
                undo.push_async_callback(self._ports.release, mapping.proto, mapping.host_ip, mapping.host_port)
                mappings.append(mapping)
            updated = dataclasses.replace(ep, external=dict(options), ports=tuple(mappings))
            await self._store.put_endpoint(updated)
            # Unwound in reverse: the store is put back first, then re-synced.
            undo.push_async_callback(self._resync)
            undo.push_async_callback(self._store.put_endpoint, dataclasses.replace(ep, ports=()))
            if mappings or ep.ports:
                await self.sync()
            undo.pop_all()
        for m in mappings:
            log.info("endpoint %s: published %s:%d/%s -> %s:%d", ep.endpoint_id[:12], m.host_ip, m.host_port,
                     m.proto, m.container_ip, m.container_port)
        return updated

    async def unpublish(self, ep: EndpointRecord) -> None:
        """Release ``ep``'s host ports (the caller updates the store and syncs)."""
        for m in ep.ports:
            await self._ports.release(m.proto, m.host_ip, m.host_port)

    async def restore(self) -> list[str]:
        """At start-up: hold every recorded port again, then rebuild the
        firewall.  A port some process took while we were down is dropped
        from its endpoint (its traffic must not be stolen) and reported."""
        problems = []
        for ep in await self._store.list_endpoints():
            kept = []
            for m in ep.ports:
                try:
                    await self._reserve(PortRequest(m.proto, m.host_ip, m.host_port, m.host_port, m.container_port),
                                        m.container_ip)
                    kept.append(m)
                except Exception as e:
                    problems.append(f"endpoint {ep.endpoint_id[:12]}: {e}")
            if len(kept) != len(ep.ports):
                await self._store.put_endpoint(dataclasses.replace(ep, ports=tuple(kept)))
        for p in problems:
            log.error("restore published ports: %s", p)
        await self.sync()
        return problems

    async def _reserve(self, request: PortRequest, container_ip: str) -> PortMapping:
        port = await self._ports.reserve(request)
        return PortMapping(request.proto, request.host_ip, port, container_ip, request.container_port)

    async def _restore_ports(self, ep: EndpointRecord) -> None:
        for m in ep.ports:
            await self._ports.reserve(PortRequest(m.proto, m.host_ip, m.host_port, m.host_port, m.container_port))
        await self._store.put_endpoint(ep)
        await self._resync()

    async def _resync(self) -> None:
        try:
            await self.sync()
        except Exception as e:
            log.error("firewall re-sync after a failed change: %s", e)
