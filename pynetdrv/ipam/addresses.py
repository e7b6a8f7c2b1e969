"""Pure address arithmetic on netaddr types: parsing with clear errors, pool
bounds, and the fixed-width byte form the store sorts and indexes on."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import netaddr

from pynetdrv.errors import InvalidParameter


def parse_cidr(text: str, what: str) -> netaddr.IPNetwork:
    """A network in CIDR form with no host bits set (``10.1.0.0/16``)."""
    if "/" not in text:
        raise InvalidParameter(f"{what} {text!r} is not in CIDR form (missing /prefix)")
    try:
        net = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError) as e:
        raise InvalidParameter(f"{what} {text!r} is not a valid CIDR: {e}") from None
    if net.ip != net.network:
        raise InvalidParameter(f"{what} {text} has host bits set; did you mean {net.cidr}?")
    return net


def parse_ip(text: str, what: str) -> netaddr.IPAddress:
    """A plain IP address (no prefix)."""
    try:
        return netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InvalidParameter(f"{what} {text!r} is not a valid IP address") from None


def parse_interface(text: str, what: str) -> netaddr.IPNetwork:
    """An address with its prefix (``10.1.0.5/16``), as Docker sends gateways."""
    if "/" not in text:
        raise InvalidParameter(f"{what} {text!r} is not in CIDR form (missing /prefix)")
    try:
        return netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError) as e:
        raise InvalidParameter(f"{what} {text!r} is not a valid address/prefix: {e}") from None


def width(version: int) -> int:
    return 4 if version == 4 else 16


def to_key(value: int, version: int) -> bytes:
    """Big-endian fixed width: byte order equals numeric order, so SQLite's
    memcmp on BLOBs sorts addresses correctly (IPv6 does not fit INTEGER)."""
    return value.to_bytes(width(version), "big")


def from_key(key: bytes) -> int:
    return int.from_bytes(key, "big")


def usable_bounds(net: netaddr.IPNetwork) -> tuple[int, int]:
    """First and last address that may ever be handed out.

    IPv4: not the network or broadcast address (except /31 and /32, RFC 3021).
    IPv6: not the subnet-router anycast address (all host bits zero)."""
    first, last = int(net.first), int(net.last)
    if net.version == 4:
        if net.prefixlen <= 30:
            return first + 1, last - 1
        return first, last
    if net.prefixlen <= 126:
        return first + 1, last
    return first, last


class Geometry(NamedTuple):
    version: int
    prefixlen: int
    #: The range automatic allocation may use: the sub-pool (--ip-range) if
    #: any, never the pool's network/broadcast address.
    lo: int
    hi: int


@lru_cache(maxsize=1024)
def geometry(cidr: str, subpool: str | None) -> Geometry:
    """A pool's numbers, parsed once: netaddr parsing was most of the CPU of a
    reservation (a pool's CIDR and range never change)."""
    net = netaddr.IPNetwork(cidr)
    lo, hi = usable_bounds(net)
    if subpool:
        sub = netaddr.IPNetwork(subpool)
        lo, hi = max(lo, int(sub.first)), min(hi, int(sub.last))
    return Geometry(net.version, net.prefixlen, lo, hi)


def overlaps(a: netaddr.IPNetwork, b: netaddr.IPNetwork) -> bool:
    return bool(a.version == b.version and a.first <= b.last and b.first <= a.last)


def first_free_subnet(
    bases: Iterable[tuple[netaddr.IPNetwork, int]], taken: list[netaddr.IPNetwork]
) -> netaddr.IPNetwork | None:
    """The first subnet of the configured default ranges that overlaps nothing
    in ``taken`` (existing pools and host routes).

    Jumps past each overlapping network instead of stepping one candidate at a
    time, so a /32 of /64s behind a covering route costs one step, not 2**32."""
    for base, size in bases:
        block = 1 << (base.size.bit_length() - 1 - (size - base.prefixlen)) if size >= base.prefixlen else 0
        if block == 0:
            continue
        pos = int(base.first)
        while pos + block - 1 <= base.last:
            candidate = netaddr.IPNetwork(f"{netaddr.IPAddress(pos, base.version)}/{size}")
            hit = next((t for t in taken if overlaps(candidate, t)), None)
            if hit is None:
                return candidate
            # Next block boundary after the end of whatever we hit.
            pos = max(pos + block, ((int(hit.last) + 1 + block - 1) // block) * block)
    return None
