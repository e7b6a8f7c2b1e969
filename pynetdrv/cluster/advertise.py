"""``--advertise-address``: this host's VXLAN endpoint, checked before anything starts."""

from __future__ import annotations

import ipaddress
import socket


def check_advertise_address(text: str | None) -> str:
    """The address, normalised; ValueError (one line, naming it) if it is missing, not an IP address,
    or not an address of this host (one of the kernel's interface addresses: binding a socket is no
    proof, a namespace with no address at all lets one bind to anything)."""
    if not text:
        raise ValueError("cluster mode (--store etcd://...) needs --advertise-address IP: this host's "
                         "address on the underlay, where the other hosts send its VXLAN traffic")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"--advertise-address {text!r} is not an IP address") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise ValueError(f"--advertise-address {ip} cannot be a VXLAN endpoint (unspecified, multicast or "
                         "loopback): give this host's underlay address")
    if ip not in _host_addresses(socket.AF_INET6 if ip.version == 6 else socket.AF_INET):
        raise ValueError(f"--advertise-address {ip} is not an address of this host")
    return str(ip)


def _host_addresses(family: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {ipaddress.ip_address(a.get("local") or a.get("address")) for a in ipr.addr("dump", family=family)
                if a.get("local") or a.get("address")}
