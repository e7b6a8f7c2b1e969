"""The Store protocols and their records.

Everything pynetdrv knows lives behind these interfaces, in two kinds:

- ``SharedStore``: records that may be shared by the hosts of a multi-host
  network (etcd): a network's identity, pools and their allocations.  Each
  carries a version (1 when created, +1 on each change) and is changed by
  compare-and-swap, so two hosts can never silently overwrite each other.
  Address reservation is one atomic store operation (the primitive of
  ``ipam.pool_store``): that, not a lock in a daemon, is what guarantees an
  address is never handed out twice, even across processes.
- ``LocalStore``: records of this host only: endpoints, with their veths
  and published ports.

``Store`` is both; services take it.  Pool records belong to the IPAM
(``ipam.records``) and are re-exported here: ``store`` depends on ``ipam``,
never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pynetdrv.ipam.pool_store import PoolStore
from pynetdrv.ipam.records import Allocation, AllocationKind, CursorUpdate, PoolRecord, PoolState, Reservation

__all__ = [
    "Allocation", "AllocationKind", "CursorUpdate", "EndpointRecord", "LocalStore", "NetworkRecord", "PoolRecord",
    "PoolState", "PortMapping", "Reservation", "SharedStore", "Store",
]


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
    #: The stored version this record was read at (0: not read from a store).
    version: int = field(default=0, compare=False)


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


class SharedStore(PoolStore, Protocol):
    """Pools, allocations (``PoolStore``) and networks.  All methods are
    atomic.  Deletes of unknown ids return False, never raise."""

    async def put_network(self, network: NetworkRecord, expected_version: int) -> int:
        """Create (``expected_version`` 0: must not exist yet) or replace (the
        version read) the network; returns its new version.  Raises
        errors.VersionConflict naming the network if its stored version is
        not ``expected_version``, errors.Conflict if another network uses the
        same bridge name; nothing changes then."""

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        """With ``version`` set to the stored version."""

    async def list_networks(self) -> list[NetworkRecord]: ...

    async def delete_network(self, network_id: str) -> bool:
        """Also deletes the network's endpoints (of this host)."""


class LocalStore(Protocol):
    """This host's endpoints (veths, published ports).  Deletes of unknown
    ids return False, never raise."""

    async def put_endpoint(self, endpoint: EndpointRecord) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None: ...

    async def list_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]: ...

    async def delete_endpoint(self, endpoint_id: str) -> bool: ...


class Store(SharedStore, LocalStore, Protocol):
    """Both kinds of records, as one object (what the services take)."""

    async def close(self) -> None: ...
