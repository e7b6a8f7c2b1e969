"""The Store protocol and its records.

Everything pynetdrv knows lives behind this interface, so a distributed
store (etcd) can replace SQLite for multi-host networks.  Address reservation
is a single atomic store operation: that, not a lock in the daemon, is what
guarantees an address is never handed out twice, even across processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

#: gateway: the network's gateway; static: asked for by address (--ip, --aux-address);
#: dynamic: chosen by the allocator.
AllocationKind = Literal["gateway", "static", "dynamic"]


@dataclass(frozen=True)
class PoolRecord:
    pool_id: str
    address_space: str
    #: The pool, CIDR ("10.1.0.0/16").
    cidr: str
    #: --ip-range: automatic addresses come only from here; None = whole pool.
    subpool: str | None = None
    #: True if pynetdrv chose the pool (no --subnet).
    automatic: bool = False
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Allocation:
    address: str
    kind: AllocationKind
    owner: str = ""


@dataclass(frozen=True, order=True)
class PortMapping:
    """A published port as made: ``host_ip:host_port`` (the port chosen from
    the requested range) goes to ``container_ip:container_port``."""

    proto: Literal["tcp", "udp", "sctp"]
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@dataclass(frozen=True)
class NetworkRecord:
    network_id: str
    bridge: str
    mac: str
    mtu: int | None
    internal: bool = False
    #: Gateway addresses with prefix ("10.1.0.1/16", "fd00::1/64").
    gateways: tuple[str, ...] = ()
    #: The pools Docker gave us (CIDR), both families.
    pools: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    #: com.docker.network.bridge.enable_ip_masquerade / enable_icc / host_binding_ipv4.
    masquerade: bool = True
    icc: bool = True
    host_binding_ipv4: str = "0.0.0.0"


@dataclass(frozen=True)
class EndpointRecord:
    endpoint_id: str
    network_id: str
    host_ifname: str
    peer_ifname: str
    mac: str
    address: str = ""
    address_v6: str = ""
    sandbox_key: str | None = None
    #: ProgramExternalConnectivity options as received (None: not programmed).
    external: dict[str, Any] | None = None
    #: The ports published for this endpoint (made by ProgramExternalConnectivity).
    ports: tuple[PortMapping, ...] = ()


class Store(Protocol):
    """All methods are atomic.  Deletes of unknown ids return False, never raise."""

    # Pools and addresses -------------------------------------------------
    async def add_pool(self, pool: PoolRecord) -> None:
        """Raises errors.Conflict naming the existing pool it overlaps."""

    async def get_pool(self, pool_id: str) -> PoolRecord | None: ...

    async def list_pools(self) -> list[PoolRecord]: ...

    async def delete_pool(self, pool_id: str) -> bool:
        """Deletes the pool and all its allocations."""

    async def reserve_address(
        self, pool_id: str, address: str | None, kind: AllocationKind, owner: str = ""
    ) -> str:
        """Reserve ``address`` (plain IP) or, when None, the next free address
        of the pool's range after its cursor.  Returns the plain IP.  Raises
        NotFound (pool), Conflict (in use), InvalidParameter (outside the pool
        or not assignable), Unavailable (exhausted)."""

    async def release_address(self, pool_id: str, address: str) -> bool: ...

    async def allocations(self, pool_id: str) -> list[Allocation]: ...

    # Networks and endpoints ---------------------------------------------
    async def put_network(self, network: NetworkRecord) -> None:
        """Raises errors.Conflict if another network uses the same bridge name."""

    async def get_network(self, network_id: str) -> NetworkRecord | None: ...

    async def list_networks(self) -> list[NetworkRecord]: ...

    async def delete_network(self, network_id: str) -> bool:
        """Also deletes the network's endpoints."""

    async def put_endpoint(self, endpoint: EndpointRecord) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None: ...

    async def list_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]: ...

    async def delete_endpoint(self, endpoint_id: str) -> bool: ...

    async def close(self) -> None: ...
