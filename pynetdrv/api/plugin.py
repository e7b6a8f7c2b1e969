"""The route table: every path Docker calls, its request model and handler.

Light to import on purpose: the daemon binds its socket with PATHS and
ACTIVATE before it imports the services and the models (see server.serve)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pynetdrv.api.routes import Route

if TYPE_CHECKING:
    from pynetdrv.driver.service import NetworkService
    from pynetdrv.ipam.service import IpamService

IMPLEMENTS = ["NetworkDriver", "IpamDriver"]

_N, _I = "/NetworkDriver.", "/IpamDriver."

#: Every path plugin_routes serves, in its order.
PATHS: tuple[str, ...] = (
    "/Plugin.Activate",
    *(_N + m for m in ("GetCapabilities", "CreateNetwork", "DeleteNetwork", "CreateEndpoint", "EndpointOperInfo",
                       "DeleteEndpoint", "Join", "Leave", "DiscoverNew", "DiscoverDelete",
                       "ProgramExternalConnectivity", "RevokeExternalConnectivity", "AllocateNetwork", "FreeNetwork",
                       "GwAllocCheck")),
    *(_I + m for m in ("GetCapabilities", "GetDefaultAddressSpaces", "RequestPool", "ReleasePool", "RequestAddress",
                       "ReleaseAddress")),
)


async def activate(_: None) -> dict[str, Any]:
    return {"Implements": IMPLEMENTS}


#: Static, answered as soon as the socket is bound (routes.Gate).
ACTIVATE = Route("/Plugin.Activate", None, activate)


def plugin_routes(net: NetworkService, ipam: IpamService) -> list[Route]:
    from pynetdrv.api import ipam_models as im
    from pynetdrv.api import network_models as nm

    n, i = _N, _I
    return [
        ACTIVATE,
        Route(n + "GetCapabilities", None, net.capabilities),
        Route(n + "CreateNetwork", nm.CreateNetworkRequest, net.create_network),
        Route(n + "DeleteNetwork", nm.NetworkRef, net.delete_network),
        Route(n + "CreateEndpoint", nm.CreateEndpointRequest, net.create_endpoint),
        Route(n + "EndpointOperInfo", nm.EndpointRef, net.endpoint_oper_info),
        Route(n + "DeleteEndpoint", nm.EndpointRef, net.delete_endpoint),
        Route(n + "Join", nm.JoinRequest, net.join),
        Route(n + "Leave", nm.EndpointRef, net.leave),
        Route(n + "DiscoverNew", nm.DiscoveryRequest, net.discover),
        Route(n + "DiscoverDelete", nm.DiscoveryRequest, net.discover),
        Route(
            n + "ProgramExternalConnectivity", nm.ProgramExternalConnectivityRequest, net.program_external_connectivity
        ),
        Route(n + "RevokeExternalConnectivity", nm.EndpointRef, net.revoke_external_connectivity),
        Route(n + "AllocateNetwork", nm.AllocateNetworkRequest, net.allocate_network),
        Route(n + "FreeNetwork", nm.NetworkRef, net.free_network),
        Route(n + "GwAllocCheck", nm.GwAllocCheckRequest, net.gw_alloc_check),
        Route(i + "GetCapabilities", None, ipam.capabilities),
        Route(i + "GetDefaultAddressSpaces", None, ipam.address_spaces),
        Route(i + "RequestPool", im.RequestPoolRequest, ipam.request_pool),
        Route(i + "ReleasePool", im.PoolRef, ipam.release_pool),
        Route(i + "RequestAddress", im.RequestAddressRequest, ipam.request_address),
        Route(i + "ReleaseAddress", im.ReleaseAddressRequest, ipam.release_address),
    ]
