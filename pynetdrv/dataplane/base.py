"""The Dataplane protocol: every kernel effect the driver needs, as idempotent steps.

The driver service only talks to this protocol.  ``netlink.NetlinkDataplane`` is
the real implementation (pyroute2); the unit tests use an in-memory one
(tests/fakes/dataplane.py).  The protocol states what the kernel must look
like, nothing about how to get there: how an implementation schedules its
kernel requests (which to try first, what to keep off the event loop) is its
own business.

Ownership: every link pynetdrv creates carries an interface alias
``<instance>:<kind>:<id>`` (see ``owner_alias``), where the instance is the
driver name (``pynetdrv`` unless the socket is named otherwise).  Reconcile and
the delete paths only ever touch links that carry their own instance's alias:
a user's bridge that happens to share a name is never modified or removed, and
a second pynetdrv (the integration tests run one named ``pynetdrv-it``) never
removes the first one's links as "unknown".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

DEFAULT_INSTANCE = "pynetdrv"
LinkKind = Literal["bridge", "veth"]


def owner_alias(kind: LinkKind, object_id: str, instance: str = DEFAULT_INSTANCE) -> str:
    """The IFLA_IFALIAS value that marks a link as created by pynetdrv."""
    return f"{instance}:{kind}:{object_id}"


def birth_mac(instance: str, ifname: str) -> str:
    """The MAC a link of ours has from the moment it is created, before its
    alias can be set (the kernel ignores an alias given with RTM_NEWLINK): a
    crash between the two steps leaves a link that is still provably ours, so
    reconcile removes it instead of leaving an unmarked leftover.  Locally
    administered unicast, derived from the instance and the name."""
    digest = hashlib.sha256(f"pynetdrv-birth\0{instance}\0{ifname}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02 | (digest[0] & 0xFC), *digest[1:6]))


def parse_owner_alias(alias: str | None, instance: str = DEFAULT_INSTANCE) -> tuple[LinkKind, str] | None:
    """Inverse of ``owner_alias``; None for links this instance does not own."""
    prefix = f"{instance}:"
    if not alias or not alias.startswith(prefix):
        return None
    kind, _, object_id = alias[len(prefix):].partition(":")
    if kind not in ("bridge", "veth") or not object_id:
        return None
    return kind, object_id  # type: ignore[return-value]


@dataclass(frozen=True)
class BridgeSpec:
    """A network's bridge as it must look in the kernel."""

    name: str
    network_id: str
    mac: str
    mtu: int | None
    #: Gateway addresses in CIDR form with the pool's prefix, e.g. "10.0.0.1/24".
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class VethSpec:
    """An endpoint's veth pair: ``host_name`` is enslaved to ``bridge``,
    ``peer_name`` stays in the host namespace for Docker to move."""

    host_name: str
    peer_name: str
    bridge: str
    endpoint_id: str
    #: MAC address of the container (peer) end.
    mac: str
    mtu: int | None


@dataclass(frozen=True)
class OwnedLink:
    """A link found in the kernel that carries a pynetdrv alias, with the
    state ``veth_in_shape`` compares against a spec (read in the same dump,
    so reconcile needs no further read per link)."""

    name: str
    kind: LinkKind
    object_id: str
    #: Name of the link it is enslaved to (None: no master).
    master: str | None = None
    up: bool = False
    mtu: int | None = None
    #: Bridge port with hairpin mode on.
    hairpin: bool = False


def veth_in_shape(link: OwnedLink, spec: VethSpec) -> bool:
    """True if the host end ``link`` already is as ``ensure_veth(spec)``
    leaves it (owned by the endpoint, enslaved to its bridge, up, hairpin
    on, MTU), so re-ensuring it would write nothing."""
    return (
        link.name == spec.host_name
        and link.kind == "veth"
        and link.object_id == spec.endpoint_id
        and link.master == spec.bridge
        and link.up
        and link.hairpin
        and (spec.mtu is None or link.mtu == spec.mtu)
    )


class DataplaneError(Exception):
    """A kernel step failed; the message names the step and the object."""


class ForeignLinkError(DataplaneError):
    """A link with the wanted name exists but was not created by pynetdrv."""


class Dataplane(Protocol):
    """Idempotent kernel steps.  ``ensure_*`` succeed when the object already
    exists as specified (and fix what differs); ``remove_*`` succeed when it is
    already gone."""

    async def ensure_bridge(self, spec: BridgeSpec) -> None:
        """Create or fix the bridge: alias, MAC, MTU, addresses, up."""

    async def remove_bridge(self, name: str, network_id: str) -> None:
        """Remove the bridge (only if its alias names ``network_id``)."""

    async def ensure_veth(self, spec: VethSpec) -> None:
        """Create or fix the veth pair and enslave the host end to the bridge
        (hairpin mode on, MTU, up); the peer end stays down for Docker."""

    async def remove_veth(self, host_name: str, endpoint_id: str) -> None:
        """Remove the veth pair (only if its alias names ``endpoint_id``)."""

    async def owned_links(self) -> list[OwnedLink]:
        """All links in the namespace that carry a pynetdrv alias."""

    async def link_in_use(self, name: str) -> bool:
        """True if a link named ``name`` exists and is NOT pynetdrv's."""

    async def host_routes(self) -> list[str]:
        """Destinations (CIDR) of the main routing table, both families,
        excluding default routes; used to keep automatic pools off them."""

    async def close(self) -> None:
        """Release sockets."""
