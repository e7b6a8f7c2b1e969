"""IpamDriver request/response models (libnetwork ipams/remote/api/api.go).

Requests carry plain IPs; responses carry CIDR (the mask becomes the
container's prefix length).  See ../shared/reference/protocol.md section 5.
"""

from __future__ import annotations

from pydantic import Field

from pynetdrv.api.base_model import Wire

#: RequestAddress option that marks the gateway request.
REQUEST_ADDRESS_TYPE = "RequestAddressType"
GATEWAY_TYPE = "com.docker.network.gateway"


class CapabilitiesResponse(Wire):
    RequiresMACAddress: bool = False
    #: False: all state is in our own store, Docker need not replay anything.
    RequiresRequestReplay: bool = False


class AddressSpacesResponse(Wire):
    LocalDefaultAddressSpace: str
    GlobalDefaultAddressSpace: str


class RequestPoolRequest(Wire):
    AddressSpace: str = ""
    #: --subnet, or "" for an automatic pool.
    Pool: str = ""
    #: --ip-range: automatic addresses come only from it.
    SubPool: str = ""
    #: --ipam-opt values.
    Options: dict[str, str] | None = None
    #: Only meaningful when Pool is empty.
    V6: bool = False


class RequestPoolResponse(Wire):
    PoolID: str
    Pool: str
    Data: dict[str, str] = Field(default_factory=dict)


class PoolRef(Wire):
    """ReleasePool."""

    PoolID: str = Field(min_length=1)


class RequestAddressRequest(Wire):
    PoolID: str = Field(min_length=1)
    Address: str = ""
    Options: dict[str, str] | None = None


class RequestAddressResponse(Wire):
    Address: str
    Data: dict[str, str] = Field(default_factory=dict)


class ReleaseAddressRequest(Wire):
    PoolID: str = Field(min_length=1)
    Address: str = Field(min_length=1)
