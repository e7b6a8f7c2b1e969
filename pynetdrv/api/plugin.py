"""The route table: every path Docker calls, its request model and handler."""

from __future__ import annotations

from typing import Any

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.api.routes import Route
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService

IMPLEMENTS = ["NetworkDriver", "IpamDriver"]


async def activate(_: None) -> dict[str, Any]:
    return {"Implements": IMPLEMENTS}


def plugin_routes(net: NetworkService, ipam: IpamService) -> list[Route]:
    n, i = "/NetworkDriver.", "/IpamDriver."
    return [
        Route("/Plugin.Activate", None, activate),
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
        Route(n + "ProgramExternalConnectivity", nm.ProgramExternalConnectivityRequest, net.program_external_connectivity),
        Route(n + "RevokeExternalConnectivity", nm.EndpointRef, net.revoke_external_connectivity),
        Route(n + "AllocateNetwork", nm.AllocateNetworkRequest, net.allocate_network),
        Route(n + "FreeNetwork", nm.NetworkRef, net.free_network),
        Route(i + "GetCapabilities", None, ipam.capabilities),
        Route(i + "GetDefaultAddressSpaces", None, ipam.address_spaces),
        Route(i + "RequestPool", im.RequestPoolRequest, ipam.request_pool),
        Route(i + "ReleasePool", im.PoolRef, ipam.release_pool),
        Route(i + "RequestAddress", im.RequestAddressRequest, ipam.request_address),
        Route(i + "ReleaseAddress", im.ReleaseAddressRequest, ipam.release_address),
    ]
