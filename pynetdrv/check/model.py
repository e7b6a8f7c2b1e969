"""What ``pynetdrv check`` compares: plain records of the state, the kernel
and Docker, and the findings it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pynetdrv.store.snapshot import StateSnapshot

__all__ = ["DockerEndpoint", "DockerNetwork", "DockerView", "Finding", "FindingKind", "KernelLink", "StateSnapshot"]

#: leak: something is held that nothing uses (an address, a pool);
#: orphan: an object nothing refers to (a link or a record the other side does not know);
#: missing: an object one side expects and the other lacks;
#: duplicate: one address held twice;
#: mismatch: both sides have it, but it differs (MTU, master, address).
FindingKind = Literal["leak", "orphan", "missing", "duplicate", "mismatch"]


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    #: What it is about, e.g. "link pnve-1234567890", "endpoint 1234567890ab".
    subject: str
    detail: str
    #: True if ``check --repair`` fixes it.
    repairable: bool = False
    #: A state change --repair makes for it, beyond the kernel reconcile:
    #: ("release", pool_id, address), ("reserve", pool_id, address),
    #: ("delete_pool", pool_id) or ("forget_endpoint", endpoint_id).  Only set
    #: when Docker's view showed that Docker does not (or does) hold it.
    action: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"


@dataclass(frozen=True)
class KernelLink:
    """A link as the kernel has it, reduced to what the checks need."""

    name: str
    #: "bridge", "veth", ... (IFLA_INFO_KIND); None if the kernel gives none.
    kind: str | None
    alias: str | None
    mtu: int
    up: bool
    #: Name of the bridge it is enslaved to, if any.
    master: str | None = None
    #: Global (universe-scope) addresses in CIDR form, e.g. "10.1.0.1/24".
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class DockerEndpoint:
    container_id: str
    container_name: str
    endpoint_id: str
    #: CIDR form as Docker reports it ("10.1.0.2/24"), "" if none.
    ipv4: str = ""
    ipv6: str = ""


@dataclass(frozen=True)
class DockerNetwork:
    network_id: str
    name: str
    driver: str
    ipam_driver: str
    subnets: tuple[str, ...] = ()
    #: --aux-address values (plain IPs): static allocations Docker holds without a container.
    aux_addresses: tuple[str, ...] = ()
    endpoints: tuple[DockerEndpoint, ...] = ()


@dataclass(frozen=True)
class DockerView:
    """The networks that use this instance as network driver or IPAM driver."""

    networks: tuple[DockerNetwork, ...] = ()
