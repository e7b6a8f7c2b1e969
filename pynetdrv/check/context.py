"""What every checker gets: the state snapshot and, when they could be read,
the kernel's links and Docker's view."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import netaddr

from pynetdrv.check.model import DockerView, Finding, KernelLink, StateSnapshot
from pynetdrv.firewall.base import Firewall
from pynetdrv.store.base import EndpointRecord, NetworkRecord, PoolRecord

if TYPE_CHECKING:
    from pynetdrv.check.cluster_checks import ClusterExpect


@dataclass
class CheckContext:
    state: StateSnapshot
    instance: str
    #: None: the kernel was not read (never the case from the CLI).
    links: list[KernelLink] | None = None
    #: None: Docker was not reachable or not asked (--no-docker).
    docker: DockerView | None = None
    #: Network namespace the kernel was read in (None = this process's), for
    #: checkers that read more of it themselves (the firewall's rules).
    netns: str | None = None
    #: The firewall to compare with the state (None: not compared).
    firewall: Firewall | None = None
    #: Things worth saying that are not problems (e.g. what could not be compared).
    notes: list[str] = field(default_factory=list)
    #: Other names Docker's networks use for this instance: a managed plugin's
    #: ``NAME:TAG`` (its instance is the stem of its socket inside the plugin).
    driver_names: tuple[str, ...] = ()
    #: Cluster mode: the registry and this host's VXLAN devices (None: not cluster mode, or etcd away).
    cluster: ClusterExpect | None = None

    def is_ours(self, driver: str) -> bool:
        """Is ``driver`` (a Docker network's driver or IPAM driver) this instance?"""
        return driver == self.instance or driver in self.driver_names

    # Lookups the checkers share --------------------------------------------
    def networks(self) -> dict[str, NetworkRecord]:
        return {n.network_id: n for n in self.state.networks}

    def endpoints(self) -> dict[str, EndpointRecord]:
        return {e.endpoint_id: e for e in self.state.endpoints}

    def links_by_name(self) -> dict[str, KernelLink]:
        return {link.name: link for link in self.links or []}

    def docker_orphans(self) -> set[str]:
        """Endpoints of the state on a network Docker has (with this driver)
        that Docker does not know: a DeleteEndpoint Docker could not deliver.
        Empty without Docker's view."""
        if self.docker is None:
            return set()
        ours = {dn.network_id: {e.endpoint_id for e in dn.endpoints}
                for dn in self.docker.networks if self.is_ours(dn.driver)}
        return {e.endpoint_id for e in self.state.endpoints
                if e.network_id in ours and e.endpoint_id not in ours[e.network_id]}

    def pool_of(self, ip: netaddr.IPAddress) -> PoolRecord | None:
        """The pynetdrv pool holding ``ip`` (pools never overlap)."""
        for pool in self.state.pools:
            if ip in netaddr.IPNetwork(pool.cidr):
                return pool
        return None


#: A checker looks at the context and returns what disagrees.  Async, so a
#: checker may read more itself (the firewall checker will run iptables-save).
Checker = Callable[[CheckContext], Awaitable[list[Finding]]]


def short(object_id: str) -> str:
    return object_id[:12]


def plain_ip(address: str) -> netaddr.IPAddress | None:
    """"10.1.0.5/24" or "10.1.0.5" -> IPAddress; None for "" or garbage."""
    if not address:
        return None
    try:
        return netaddr.IPNetwork(address).ip
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
