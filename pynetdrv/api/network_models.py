"""NetworkDriver request/response models (libnetwork drivers/remote/api/api.go).

Field names are Docker's.  See ../shared/reference/protocol.md section 4.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pynetdrv.api.base_model import ObjectID, Wire


class CapabilitiesResponse(Wire):
    #: "local": networks exist on this host only; Docker keeps them in its local store.
    Scope: str = "local"
    ConnectivityScope: str = "local"
    #: Docker 28+: we answer ``/NetworkDriver.GwAllocCheck`` (driver/gw_alloc.py),
    #: asked before any IPAM work of a ``network create``.  Older engines
    #: ignore the field (Go's JSON decoding skips unknown keys).
    GwAllocChecker: bool = True


class GwAllocCheckRequest(Wire):
    """Docker 28+ (moby libnetwork/drivers/remote/api/api.go GwAllocCheckerRequest):
    the Options CreateNetwork will carry, sent before the gateway is allocated."""

    Options: dict[str, Any] | None = Field(default_factory=dict)


class GwAllocCheckResponse(Wire):
    #: True: Docker reserves no gateway address of that family (unless the
    #: user gave --gateway).
    SkipIPv4: bool = False
    SkipIPv6: bool = False


class IPAMData(Wire):
    """One pool as the IPAM driver answered it.  Gateway and aux values are CIDR."""

    AddressSpace: str = ""
    Pool: str = ""
    Gateway: str = ""
    AuxAddresses: dict[str, str] = Field(default_factory=dict)


class CreateNetworkRequest(Wire):
    NetworkID: ObjectID
    #: Holds ``com.docker.network.generic`` (the ``-o`` values, as strings),
    #: ``com.docker.network.enable_ipv6`` and, with --internal, ``...internal``.
    Options: dict[str, Any] = Field(default_factory=dict)
    #: ``[]`` when empty; None tolerated (swarm's AllocateNetwork sends null).
    IPv4Data: list[IPAMData] | None = None
    IPv6Data: list[IPAMData] | None = None


class NetworkRef(Wire):
    """DeleteNetwork and FreeNetwork."""

    NetworkID: ObjectID


class EndpointInterface(Wire):
    """Addresses are CIDR; empty string means "not set"."""

    Address: str = ""
    AddressIPv6: str = ""
    MacAddress: str = ""


class CreateEndpointRequest(Wire):
    NetworkID: ObjectID
    EndpointID: ObjectID
    Interface: EndpointInterface | None = None
    Options: dict[str, Any] = Field(default_factory=dict)


class CreateEndpointResponse(Wire):
    #: Only fields Docker left empty may be filled; None means "nothing to add".
    Interface: EndpointInterface | None = None


class EndpointRef(Wire):
    """Leave, DeleteEndpoint, EndpointOperInfo, RevokeExternalConnectivity."""

    NetworkID: ObjectID
    EndpointID: ObjectID


class EndpointOperInfoResponse(Wire):
    Value: dict[str, Any] = Field(default_factory=dict)


class JoinRequest(Wire):
    NetworkID: ObjectID
    EndpointID: ObjectID
    SandboxKey: str = ""
    Options: dict[str, Any] = Field(default_factory=dict)


class InterfaceName(Wire):
    #: A link in the host namespace; Docker moves it into the sandbox.
    SrcName: str
    #: Docker renames it to DstPrefix + N (eth0, eth1, ...).
    DstPrefix: str = "eth"


class StaticRoute(Wire):
    Destination: str
    RouteType: int
    NextHop: str = ""


class JoinResponse(Wire):
    InterfaceName: InterfaceName
    #: Plain IPs (not CIDR); they become the container's default routes.
    Gateway: str = ""
    GatewayIPv6: str = ""
    StaticRoutes: list[StaticRoute] = Field(default_factory=list)
    #: True: never add a docker_gwbridge interface to the container.
    DisableGatewayService: bool = True


class ProgramExternalConnectivityRequest(Wire):
    NetworkID: ObjectID
    EndpointID: ObjectID
    Options: dict[str, Any] = Field(default_factory=dict)


class DiscoveryRequest(Wire):
    DiscoveryType: int = 0
    DiscoveryData: Any = None


class AllocateNetworkRequest(Wire):
    NetworkID: ObjectID
    Options: dict[str, str] | None = None
    IPv4Data: list[IPAMData] | None = None
    IPv6Data: list[IPAMData] | None = None


class AllocateNetworkResponse(Wire):
    #: Replaces the driver options that reach the nodes' CreateNetwork.
    Options: dict[str, str] = Field(default_factory=dict)
