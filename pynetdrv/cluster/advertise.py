"""``--advertise-address``: this host's VXLAN endpoint, checked before anything starts."""

from __future__ import annotations

import errno
import ipaddress
import socket


def check_advertise_address(text: str | None) -> str:
    """The address, normalised; ValueError (one line, naming it) if it is missing, not an IP address,
    or not an address of this host (binding a UDP socket to it is the kernel's own answer)."""
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
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(ip), 0))
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"--advertise-address {ip} is not an address of this host") from None
            raise ValueError(f"--advertise-address {ip}: cannot use it: {e.strerror}") from None
    return str(ip)
