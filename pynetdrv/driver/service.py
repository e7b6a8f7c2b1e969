"""The NetworkDriver: one bridge per network, one veth pair per endpoint.

Each call validates first (so bad input changes nothing), then does the
kernel step, then records it in the store; if the store write fails the
kernel step is undone.  A crash between the two leaves only a link the store
does not know, which reconcile removes at the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, nullcontext
from typing import Any

import netaddr

from pynetdrv.api import network_models as m
from pynetdrv.api.base_model import Empty
from pynetdrv.dataplane.base import BridgeSpec, Dataplane, DataplaneError, ForeignLinkError, VethSpec
from pynetdrv.driver import naming
from pynetdrv.driver.cluster_hooks import ClusterHooks
from pynetdrv.driver.external import External
from pynetdrv.driver.gw_alloc import gw_alloc_check
from pynetdrv.driver.options import parse_network_options
from pynetdrv.errors import Conflict, Internal, InvalidParameter, NotFound
from pynetdrv.firewall.base import Firewall
from pynetdrv.ipam.addresses import parse_cidr, parse_interface
from pynetdrv.ports.bindings import EXPOSED, PORTMAP, docker_portmap
from pynetdrv.ports.reserver import PortReserver
from pynetdrv.store.base import EndpointRecord, NetworkRecord, Store

log = logging.getLogger(__name__)


def bridge_spec(net: NetworkRecord) -> BridgeSpec:
    return BridgeSpec(name=net.bridge, network_id=net.network_id, mac=net.mac, mtu=net.mtu, addresses=net.gateways)


def veth_spec(net: NetworkRecord, ep: EndpointRecord) -> VethSpec:
    return VethSpec(
        host_name=ep.host_ifname, peer_name=ep.peer_ifname, bridge=net.bridge,
        endpoint_id=ep.endpoint_id, mac=ep.mac, mtu=net.mtu,
    )


class NetworkService:
    def __init__(self, store: Store, dataplane: Dataplane, firewall: Firewall, ports: PortReserver,
                 cluster: ClusterHooks | None = None) -> None:
        self._store = store
        self._cluster = cluster
        self._dp = dataplane
        self.external = External(store, firewall, ports)
        # Network create/delete are rare: one lock keeps bridge-name checks
        # race free.  Endpoint calls serialise per network only.
        self._networks_lock = asyncio.Lock()
        self._network_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def capabilities(self, _: None) -> m.CapabilitiesResponse:
        return m.CapabilitiesResponse(Scope="local", ConnectivityScope="local")

    async def gw_alloc_check(self, req: m.GwAllocCheckRequest) -> m.GwAllocCheckResponse:
        """Docker 28+: see driver/gw_alloc.py."""
        return await gw_alloc_check(req)

    # Networks -------------------------------------------------------------
    async def create_network(self, req: m.CreateNetworkRequest) -> Empty:
        net = self._network_record(req)
        async with self._networks_lock, self._changing(req.NetworkID):
            existing = await self._store.get_network(req.NetworkID)
            if self._cluster is not None:
                net = await self._cluster.prepare_network(existing or net)
            async with AsyncExitStack() as undo:
                if existing is None:  # a retry must not tear down a working network
                    undo.push_async_callback(self._dp.remove_bridge, net.bridge, net.network_id)
                await self._kernel(self._dp.ensure_bridge(bridge_spec(net)))
                await self._store.put_network(net, existing.version if existing else 0)
                if existing is None:
                    undo.push_async_callback(self._forget_network, net.network_id)
                await self._kernel(self.external.sync())
                if self._cluster is not None:
                    undo.push_async_callback(self._cluster.network_gone, net)
                    await self._kernel(self._cluster.network_ready(net))
                undo.pop_all()
        log.info(
            "network %s created: bridge %s, gateways %s",
            net.network_id[:12],
            net.bridge,
            ", ".join(net.gateways) or "none",
        )
        return Empty()

    def _network_record(self, req: m.CreateNetworkRequest) -> NetworkRecord:
        opts = parse_network_options(req.Options)
        gateways, pools = [], []
        for family, data in ((4, req.IPv4Data or []), (6, req.IPv6Data or [])):
            for d in data:
                if not d.Pool:
                    continue
                pool = parse_cidr(d.Pool, f"IPv{family} pool")
                pools.append(str(pool.cidr))
                if d.Gateway:
                    gw = parse_interface(d.Gateway, f"IPv{family} gateway")
                    if gw.ip not in pool:
                        raise InvalidParameter(f"gateway {d.Gateway} is outside pool {d.Pool}")
                    gateways.append(f"{gw.ip}/{pool.prefixlen}")
        return NetworkRecord(
            network_id=req.NetworkID, bridge=opts.bridge_name or naming.bridge_name(req.NetworkID),
            mac=naming.derived_mac(req.NetworkID), mtu=opts.mtu, internal=opts.internal,
            gateways=tuple(gateways), pools=tuple(pools), options=dict(req.Options),
            masquerade=opts.masquerade, icc=opts.icc, host_binding_ipv4=opts.host_binding_ipv4,
        )

    def _changing(self, network_id: str) -> AbstractAsyncContextManager[None]:
        """Cluster mode: the member's sync keeps off the network while it is made or removed."""
        return self._cluster.changing(network_id) if self._cluster is not None else nullcontext()

    async def _forget_network(self, network_id: str) -> None:
        """Undo of a create whose firewall step failed: the record goes and
        the firewall is put back as it was."""
        await self._store.delete_network(network_id)
        await self._sync_logged("undo of network create")

    async def delete_network(self, req: m.NetworkRef) -> Empty:
        # Idempotent: Docker deletes networks whose creation it rolled back, and
        # may retry after a crash; an unknown network is already deleted.
        async with self._networks_lock, self._network_locks[req.NetworkID], self._changing(req.NetworkID):
            net = await self._store.get_network(req.NetworkID)
            if net is None:
                return Empty()
            endpoints = await self._store.list_endpoints(net.network_id)
            for ep in endpoints:
                await self._kernel(self._dp.remove_veth(ep.host_ifname, ep.endpoint_id))
                if self._cluster is not None:
                    await self._cluster.endpoint_gone(ep)
            if self._cluster is not None:
                await self._kernel(self._cluster.network_gone(net))
            await self._kernel(self._dp.remove_bridge(net.bridge, net.network_id))
            try:
                await self._store.delete_network(net.network_id)
            except Internal:
                # The store cannot forget it (disk full, read-only): put the
                # links back, so the network Docker still has keeps working.
                await self._kernel(self._dp.ensure_bridge(bridge_spec(net)))
                for ep in endpoints:
                    await self._kernel(self._dp.ensure_veth(veth_spec(net, ep)))
                raise
            for ep in endpoints:
                await self.external.unpublish(ep)
            await self._sync_logged(f"delete of network {net.network_id[:12]}")
            if self._cluster is not None:
                await self._cluster.network_removed(net)
        # The lock stays in the map: a call still waiting on it must keep
        # excluding any newcomer (one small Lock per network ever seen).
        log.info("network %s deleted", req.NetworkID[:12])
        return Empty()

    # Endpoints ------------------------------------------------------------
    async def create_endpoint(self, req: m.CreateEndpointRequest) -> m.CreateEndpointResponse:
        iface = req.Interface or m.EndpointInterface()
        _check_interface(iface)
        async with self._network_locks[req.NetworkID]:
            net = await self._require_network(req.NetworkID)
            ep = await self._store.get_endpoint(req.EndpointID)
            if ep is not None and ep.network_id != net.network_id:
                raise Conflict(f"endpoint {req.EndpointID[:12]} already exists on network {ep.network_id[:12]}")
            new = ep is None
            if ep is None:
                host, peer = naming.veth_names(req.EndpointID)
                ep = EndpointRecord(
                    endpoint_id=req.EndpointID, network_id=net.network_id, host_ifname=host, peer_ifname=peer,
                    mac=iface.MacAddress.lower() or naming.derived_mac(req.EndpointID),
                    address=iface.Address, address_v6=iface.AddressIPv6,
                )
            async with AsyncExitStack() as undo:
                if new:  # a retry must not tear down a working endpoint
                    undo.push_async_callback(self._dp.remove_veth, ep.host_ifname, ep.endpoint_id)
                await self._kernel(self._dp.ensure_veth(veth_spec(net, ep)))
                await self._store.put_endpoint(ep)
                if self._cluster is not None:
                    await self._cluster.endpoint_ready(net, ep)
                undo.pop_all()
        log.info("endpoint %s created on %s: %s", ep.endpoint_id[:12], net.bridge, ep.host_ifname)
        # Fill only what Docker left empty: echoing a field it set is an error.
        return m.CreateEndpointResponse(Interface=None if iface.MacAddress else m.EndpointInterface(MacAddress=ep.mac))

    async def delete_endpoint(self, req: m.EndpointRef) -> Empty:
        # Idempotent: Docker rolls back failed starts with DeleteEndpoint and
        # sends it for stale endpoints after its own crash.
        async with self._network_locks[req.NetworkID]:
            ep = await self._store.get_endpoint(req.EndpointID)
            if ep is None or ep.network_id != req.NetworkID:  # not on this network: nothing to delete here
                return Empty()
            # Forget it first: if the kernel step fails, the veth is an orphan
            # that reconcile removes, rather than an endpoint that never dies.
            await self._store.delete_endpoint(ep.endpoint_id)
            if ep.ports:  # Revoke did not come (Docker crashed, or rolled back)
                await self.external.unpublish(ep)
                await self._sync_logged(f"delete of endpoint {ep.endpoint_id[:12]}")
            await self._kernel(self._dp.remove_veth(ep.host_ifname, ep.endpoint_id))
            if self._cluster is not None:
                await self._cluster.endpoint_gone(ep)
        log.info("endpoint %s deleted", req.EndpointID[:12])
        return Empty()

    async def endpoint_oper_info(self, req: m.EndpointRef) -> m.EndpointOperInfoResponse:
        # Docker calls this right after Join and fails the start on error:
        # answer from the store only, no kernel round trip.
        ep = await self._require_endpoint(req)
        exposed = (ep.external or {}).get(EXPOSED) or []
        return m.EndpointOperInfoResponse(
            Value={"HostInterface": ep.host_ifname, "MacAddress": ep.mac, "SandboxKey": ep.sandbox_key or "",
                   PORTMAP: docker_portmap(ep.ports), EXPOSED: exposed}
        )

    async def join(self, req: m.JoinRequest) -> m.JoinResponse:
        async with self._network_locks[req.NetworkID]:
            net = await self._require_network(req.NetworkID)
            ep = await self._require_endpoint(req)
            # Re-ensure the pair: cheap, and heals a veth lost since CreateEndpoint.
            await self._kernel(self._dp.ensure_veth(veth_spec(net, ep)))
            await self._store.put_endpoint(_replace(ep, sandbox_key=req.SandboxKey))
        gw4, gw6 = ("", "") if net.internal else (_gateway_for(net, ep.address, 4), _gateway_for(net, ep.address_v6, 6))
        return m.JoinResponse(
            InterfaceName=m.InterfaceName(SrcName=ep.peer_ifname, DstPrefix="eth"),
            Gateway=gw4, GatewayIPv6=gw6, DisableGatewayService=True,
        )

    async def leave(self, req: m.EndpointRef) -> Empty:
        # No kernel work: Docker moves the interface back after Leave, and the
        # veth goes in DeleteEndpoint.  Idempotent for unknown endpoints.
        async with self._network_locks[req.NetworkID]:
            ep = await self._store.get_endpoint(req.EndpointID)
            if ep is not None and ep.network_id == req.NetworkID:
                await self._store.put_endpoint(_replace(ep, sandbox_key=None))
        return Empty()

    async def program_external_connectivity(self, req: m.ProgramExternalConnectivityRequest) -> Empty:
        # Sent for the container's gateway endpoint after Join, with its -p
        # bindings: hold the host ports and open them, all or nothing.
        async with self._network_locks[req.NetworkID]:
            ep = await self._require_endpoint(req)
            net = await self._require_network(req.NetworkID)
            await self._kernel(self.external.publish(net, ep, dict(req.Options)))
        return Empty()

    async def revoke_external_connectivity(self, req: m.EndpointRef) -> Empty:
        async with self._network_locks[req.NetworkID]:
            ep = await self._store.get_endpoint(req.EndpointID)
            if ep is None or ep.network_id != req.NetworkID:
                return Empty()
            await self.external.unpublish(ep)
            await self._store.put_endpoint(_replace(ep, external=None, ports=()))
            if ep.ports:
                await self._kernel(self.external.sync())
        return Empty()

    # Swarm and discovery: accepted, nothing to do for a local-scope driver.
    async def discover(self, _: m.DiscoveryRequest) -> Empty:
        return Empty()

    async def allocate_network(self, req: m.AllocateNetworkRequest) -> m.AllocateNetworkResponse:
        # These options replace what reaches the nodes' CreateNetwork: echo them.
        return m.AllocateNetworkResponse(Options=dict(req.Options or {}))

    async def free_network(self, _: m.NetworkRef) -> Empty:
        return Empty()

    # Helpers --------------------------------------------------------------
    async def _require_network(self, network_id: str) -> NetworkRecord:
        net = await self._store.get_network(network_id)
        if net is None:
            raise NotFound(f"network {network_id[:12]} is not known to pynetdrv")
        return net

    async def _require_endpoint(
        self, req: m.EndpointRef | m.JoinRequest | m.ProgramExternalConnectivityRequest
    ) -> EndpointRecord:
        ep = await self._store.get_endpoint(req.EndpointID)
        if ep is None or ep.network_id != req.NetworkID:
            raise NotFound(f"endpoint {req.EndpointID[:12]} is not known to pynetdrv on network {req.NetworkID[:12]}")
        return ep

    async def _sync_logged(self, what: str) -> None:
        """A firewall sync after something is already gone: a failure is
        logged (the next sync or restart repairs it), not a failed delete."""
        try:
            await self._kernel(self.external.sync())
        except Internal as e:
            log.error("firewall sync after %s failed: %s", what, e)

    @staticmethod
    async def _kernel(step: Awaitable[Any]) -> Any:
        """Run a dataplane step, turning its errors into error kinds."""
        try:
            return await step
        except ForeignLinkError as e:
            raise Conflict(str(e)) from e
        except DataplaneError as e:
            raise Internal(str(e)) from e


def _check_interface(iface: m.EndpointInterface) -> None:
    if iface.Address:
        parse_interface(iface.Address, "endpoint address")
    if iface.AddressIPv6:
        parse_interface(iface.AddressIPv6, "endpoint IPv6 address")
    if iface.MacAddress and not naming.valid_mac(iface.MacAddress):
        raise InvalidParameter(
            f"endpoint MAC address {iface.MacAddress!r} is not valid (want a unicast aa:bb:cc:dd:ee:ff)")


def _gateway_for(net: NetworkRecord, address: str, family: int) -> str:
    """The gateway of the pool the endpoint's address lies in (a network may
    have several subnets per family); plain IP, as Docker wants it."""
    if not address:
        return ""
    ip = netaddr.IPNetwork(address).ip
    gateways = [netaddr.IPNetwork(g) for g in net.gateways if netaddr.IPNetwork(g).version == family]
    for gw in gateways:
        if ip in gw.cidr:
            return str(gw.ip)
    return str(gateways[0].ip) if gateways else ""


def _replace(ep: EndpointRecord, **changes: Any) -> EndpointRecord:
    return dataclasses.replace(ep, **changes)
