"""The firewall's input: what pynetdrv's networks and published ports need,
as plain values derived from the store (see ``state_from_store``).  Rendering
the rules from this value alone is what makes a rebuild after a reboot or a
flushed ruleset exact."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

Proto = Literal["tcp", "udp", "sctp"]

#: iptables chain names are at most 28 characters; our longest suffix is
#: "-POSTROUTING" (12), so an instance prefix may have 16.
MAX_PREFIX = 16
_PREFIX_CHARS = re.compile(r"[A-Z0-9][A-Z0-9_.-]*\Z")


@dataclass(frozen=True, order=True)
class NetworkRules:
    """One network's bridge and what is allowed through it."""

    bridge: str
    #: The network's subnets (CIDR), both families.
    subnets: tuple[str, ...] = ()
    #: --internal: nothing in or out of the host, no NAT, no published ports.
    internal: bool = False
    #: com.docker.network.bridge.enable_ip_masquerade (IPv4 only: IPv6 is routed).
    masquerade: bool = True
    #: com.docker.network.bridge.enable_icc: containers of the network talk.
    icc: bool = True


@dataclass(frozen=True, order=True)
class PortRule:
    """A published port: traffic to ``host_ip:host_port`` goes to
    ``container_ip:container_port`` on ``bridge``.  IPv4 only."""

    proto: Proto
    host_ip: str  # "0.0.0.0" = every address of the host
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


@dataclass(frozen=True)
class FirewallState:
    networks: tuple[NetworkRules, ...] = ()
    ports: tuple[PortRule, ...] = ()

    def __post_init__(self) -> None:
        # Canonical order: the rendered ruleset depends on content only.
        object.__setattr__(self, "networks", tuple(sorted(set(self.networks))))
        object.__setattr__(self, "ports", tuple(sorted(set(self.ports))))

    @property
    def empty(self) -> bool:
        return not self.networks


def chain_prefix(instance: str) -> str:
    """The prefix of this instance's chains: ``pynetdrv`` -> ``PYNETDRV``.
    Each instance owns its chains outright, so a rebuild of one never
    touches another's rules (the integration tests run ``pynetdrv-it``).
    A name too long or odd for a chain name gets a stable hash instead
    (``PN-<10 hex>``), so any socket name works."""
    prefix = instance.upper()
    if len(prefix) <= MAX_PREFIX and _PREFIX_CHARS.match(prefix):
        return prefix
    return "PN-" + hashlib.sha256(instance.encode()).hexdigest()[:10].upper()
