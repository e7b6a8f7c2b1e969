"""What a network's VXLAN device must hold, and the changes that get it there
(pure logic, no kernel: unit-tested on its own; ``vxlan`` reads and writes).

Per remote endpoint: a permanent neighbour entry per IP (IP -> MAC, answered
by the device's ARP/ND proxy) and one FDB entry (MAC -> the VTEP of the host
it lives on).  Per remote host: an all-zero-MAC FDB entry, so broadcast,
multicast and unknown unicast reach every peer (head-end replication).

Entries are ours when they carry pynetdrv's mark (see ``vxlan``): a
neighbour with our NDA_PROTOCOL, an FDB entry with NTF_EXT_LEARNED ("added by
a control plane").  Entries without the mark are someone else's: ``plan``
never removes or overwrites them, and refuses (naming them) to add an entry
of ours that would have to replace one.  The kernel keeps one FDB entry per
MAC, flags included, with a list of destinations: so the flood (all-zero)
entry is ours or not as a whole.  If someone else made it, pynetdrv adds no
destination to it (refused by name); destinations someone appends to ours
are indistinguishable from ours (a limit of the kernel's model).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .base import DataplaneError

ZERO_MAC = "00:00:00:00:00:00"
VNI_MAX = (1 << 24) - 1
#: Outer Ethernet 14 + IP header 20/40 + UDP 8 + VXLAN 8.
OVERHEAD = {4: 50, 6: 70}
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class VxlanInputError(DataplaneError):
    """A wanted entry or device parameter is invalid; nothing was changed."""


class ForeignEntryError(DataplaneError):
    """An entry of ours would have to replace an entry pynetdrv did not make."""


def vxlan_device_name(network_id: str) -> str:
    """``pnvx-`` and the first 10 hex of the network ID (a hash for anything
    else), like the network's bridge ``pnbr-...``; fits IFNAMSIZ."""
    short = network_id[:10] if re.fullmatch(r"[0-9a-f]{10,}", network_id) else \
        hashlib.sha256(network_id.encode()).hexdigest()[:10]
    return f"pnvx-{short}"


def norm_mac(mac: str, what: str) -> str:
    """``mac`` in lower case; VxlanInputError naming ``what`` unless it is a
    unicast MAC (the all-zero one is the flood entry's, never an endpoint's)."""
    low = str(mac).lower()
    if not _MAC.fullmatch(low) or int(low[:2], 16) & 1 or low == ZERO_MAC:
        raise VxlanInputError(f"{what}: {mac!r} is not a unicast MAC address")
    return low


def norm_ip(ip: str, what: str) -> IP:
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        raise VxlanInputError(f"{what}: {ip!r} is not an IP address") from None
    if addr.is_multicast or addr.is_unspecified:
        raise VxlanInputError(f"{what}: {ip} is not a unicast address")
    return addr


def check_vni(vni: int) -> int:
    if isinstance(vni, bool) or not isinstance(vni, int) or not 1 <= vni <= VNI_MAX:
        raise VxlanInputError(f"VNI {vni!r} is outside 1..{VNI_MAX}")
    return vni


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise VxlanInputError(f"VXLAN UDP port {port!r} is outside 1..65535")
    return port


@dataclass(frozen=True)
class RemoteEndpoint:
    """A container on another host: its MAC, its addresses (IPv4 and/or
    IPv6) and the VTEP (underlay IP) of the host it is on."""

    mac: str
    ips: tuple[str, ...]
    vtep: str


@dataclass(frozen=True)
class LocalPort:
    """A container on this host, for the fast path (``fastpath``): its veth's host-side name and
    its addresses."""

    ifname: str
    ips: tuple[str, ...]


@dataclass(frozen=True, order=True)
class FdbEntry:
    """MAC -> remote VTEP on the VXLAN device (ZERO_MAC: a flood entry)."""

    mac: str
    dst: str


@dataclass(frozen=True, order=True)
class NeighEntry:
    """IP -> MAC on the VXLAN device; ``permanent``: NUD_PERMANENT."""

    ip: str
    mac: str
    permanent: bool = True


@dataclass(frozen=True)
class Actual:
    """What the kernel holds on one VXLAN device: ours and others' entries
    (others': only those that can conflict, i.e. permanent ones)."""

    fdb: frozenset[FdbEntry] = frozenset()
    neigh: frozenset[NeighEntry] = frozenset()
    foreign_fdb: frozenset[FdbEntry] = frozenset()
    foreign_neigh: frozenset[NeighEntry] = frozenset()


@dataclass(frozen=True)
class Wanted:
    fdb: frozenset[FdbEntry]
    neigh: frozenset[NeighEntry]


Action = Literal["replace", "append", "del"]


@dataclass(frozen=True)
class FdbOp:
    action: Action
    entry: FdbEntry


@dataclass(frozen=True)
class NeighOp:
    action: Action
    entry: NeighEntry


@dataclass
class Plan:
    """Changes in the order they must be sent: removals first (a MAC that
    moved keeps one entry, which the replace then points elsewhere)."""

    fdb: list[FdbOp] = field(default_factory=list)
    neigh: list[NeighOp] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.fdb) + len(self.neigh)


def wanted_entries(endpoints: Iterable[RemoteEndpoint], hosts: Iterable[str]) -> Wanted:
    """The entries for these remote endpoints and peer hosts (VTEP IPs).
    Raises VxlanInputError, naming the culprits, for invalid values, one MAC
    at two VTEPs, or one IP with two MACs."""
    fdb: dict[str, FdbEntry] = {}
    neigh: dict[IP, NeighEntry] = {}
    for ep in endpoints:
        mac = norm_mac(ep.mac, "remote endpoint MAC")
        vtep = str(norm_ip(ep.vtep, f"VTEP of remote endpoint {mac}"))
        if mac in fdb and fdb[mac].dst != vtep:
            raise VxlanInputError(f"remote endpoint MAC {mac} is wanted at two VTEPs: {fdb[mac].dst} and {vtep}")
        fdb[mac] = FdbEntry(mac, vtep)
        if isinstance(ep.ips, str) or not ep.ips:
            raise VxlanInputError(f"remote endpoint {mac}: ips must be a non-empty tuple, got {ep.ips!r}")
        for raw in ep.ips:
            ip = norm_ip(raw, f"IP of remote endpoint {mac}")
            if ip in neigh and neigh[ip].mac != mac:
                raise VxlanInputError(f"remote endpoint IP {ip} is wanted with two MACs: {neigh[ip].mac} and {mac}")
            neigh[ip] = NeighEntry(str(ip), mac)
    flood = {FdbEntry(ZERO_MAC, str(norm_ip(h, "peer host VTEP"))) for h in hosts}
    return Wanted(frozenset(fdb.values()) | flood, frozenset(neigh.values()))


def _conflicts(wanted: Wanted, actual: Actual) -> list[str]:
    found = []
    # One kernel entry per MAC, with one set of flags: the flood entry's
    # destinations are all ours or all someone else's.
    foreign_macs = {e.mac for e in actual.foreign_fdb}
    for mac in sorted({e.mac for e in wanted.fdb} & foreign_macs):
        found.append(f"FDB entry {mac} (not pynetdrv's)")
    foreign_ips = {ipaddress.ip_address(n.ip) for n in actual.foreign_neigh}
    for n in sorted(wanted.neigh):
        if ipaddress.ip_address(n.ip) in foreign_ips:
            found.append(f"neighbour entry {n.ip} (not pynetdrv's)")
    return found


def plan(wanted: Wanted, actual: Actual, device: str, scope: Wanted | None = None) -> Plan:
    """The changes that make our entries on ``device`` equal ``wanted``.
    ``scope``: only entries with these keys (unicast MAC, flood VTEP, IP) are
    considered, so one endpoint or host can be added or removed without a
    wanted set for the rest; None: the whole device (``sync``).  Others'
    entries are never in the plan; ForeignEntryError if one is in the way."""
    conflicts = _conflicts(wanted, actual)
    if conflicts:
        raise ForeignEntryError(f"vxlan {device}: cannot add entries over others': {', '.join(conflicts)}")
    result = Plan()
    _plan_fdb(wanted, actual, scope, result)
    _plan_neigh(wanted, actual, scope, result)
    return result


def _plan_fdb(wanted: Wanted, actual: Actual, scope: Wanted | None, result: Plan) -> None:
    in_scope_macs = None if scope is None else {e.mac for e in scope.fdb if e.mac != ZERO_MAC}
    in_scope_flood = None if scope is None else {e for e in scope.fdb if e.mac == ZERO_MAC}
    # Unicast: one entry per MAC.  Extra destinations go; if the wanted one
    # is not among them, one is kept and replaced (no moment without one).
    have: dict[str, list[str]] = {}
    for e in sorted(actual.fdb):
        if e.mac != ZERO_MAC and (in_scope_macs is None or e.mac in in_scope_macs):
            have.setdefault(e.mac, []).append(e.dst)
    want = {e.mac: e.dst for e in wanted.fdb if e.mac != ZERO_MAC}
    replaces = []
    for mac, dsts in sorted(have.items()):
        keep = want.get(mac)
        if keep is not None and keep not in dsts:
            keep = dsts[0]  # replaced below
        result.fdb.extend(FdbOp("del", FdbEntry(mac, d)) for d in dsts if d != keep)
    for mac, dst in sorted(want.items()):
        if dst not in have.get(mac, []):
            replaces.append(FdbOp("replace", FdbEntry(mac, dst)))
    # Flood entries: one per peer VTEP, appended (several share the MAC).
    flood_have = {e for e in actual.fdb if e.mac == ZERO_MAC and (in_scope_flood is None or e in in_scope_flood)}
    flood_want = {e for e in wanted.fdb if e.mac == ZERO_MAC}
    result.fdb.extend(FdbOp("del", e) for e in sorted(flood_have - flood_want))
    result.fdb.extend(replaces)
    result.fdb.extend(FdbOp("append", e) for e in sorted(flood_want - flood_have))


def _plan_neigh(wanted: Wanted, actual: Actual, scope: Wanted | None, result: Plan) -> None:
    in_scope = None if scope is None else {ipaddress.ip_address(n.ip) for n in scope.neigh}
    have = {ipaddress.ip_address(n.ip): n for n in actual.neigh
            if in_scope is None or ipaddress.ip_address(n.ip) in in_scope}
    want = {ipaddress.ip_address(n.ip): n for n in wanted.neigh}
    for ip in sorted(set(have) - set(want), key=lambda a: (a.version, a)):
        result.neigh.append(NeighOp("del", have[ip]))
    for ip in sorted(want, key=lambda a: (a.version, a)):
        if have.get(ip) != want[ip]:  # missing, other MAC, or not permanent
            result.neigh.append(NeighOp("replace", want[ip]))


def removal(gone: Wanted, actual: Actual) -> Plan:
    """Remove exactly these entries where they are ours: an FDB entry only
    while it still points at that VTEP, a neighbour only while it still
    names that MAC (the IP may have gone to another endpoint since)."""
    result = Plan()
    result.fdb.extend(FdbOp("del", e) for e in sorted(gone.fdb & actual.fdb))
    gone_neigh = {(ipaddress.ip_address(n.ip), n.mac) for n in gone.neigh}
    result.neigh.extend(NeighOp("del", n) for n in sorted(actual.neigh)
                        if (ipaddress.ip_address(n.ip), n.mac) in gone_neigh)
    return result
