"""Docker's ``com.docker.network.portmap`` option (the ``-p``/``-P`` bindings
sent with ProgramExternalConnectivity) parsed into checked requests.  Every
field is validated before anything is reserved, so bad input changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import netaddr

from pynetdrv.errors import InvalidParameter
from pynetdrv.firewall.model import Proto
from pynetdrv.store.base import PortMapping

PORTMAP = "com.docker.network.portmap"
EXPOSED = "com.docker.network.endpoint.exposedports"
#: Docker's numbering (IANA protocol numbers).
PROTOCOLS: dict[int, Proto] = {6: "tcp", 17: "udp", 132: "sctp"}
NUMBERS = {name: number for number, name in PROTOCOLS.items()}
ANY_V4 = "0.0.0.0"


@dataclass(frozen=True)
class PortRequest:
    """One binding to make: ``host_ip`` and any port in ``[first, last]``
    (0-0: any free port, as ``-P`` or ``-p 80`` ask)."""

    proto: Proto
    host_ip: str
    first: int
    last: int
    container_port: int

    def describe(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.host_ip}:{ports if self.first else 'any'}/{self.proto} -> {self.container_port}"


def parse_portmap(options: dict[str, Any], default_host_ip: str = ANY_V4) -> list[PortRequest]:
    raw = options.get(PORTMAP)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidParameter(f"option {PORTMAP} must be a list of port bindings, got {type(raw).__name__}")
    requests = []
    for i, item in enumerate(raw):
        where = f"{PORTMAP}[{i}]"
        if not isinstance(item, dict):
            raise InvalidParameter(f"{where} must be an object, got {type(item).__name__}")
        requests.append(_parse_one(item, where, default_host_ip))
    # Docker sends each binding once; a repeat would only fight itself.
    return list(dict.fromkeys(requests))


def _parse_one(item: dict[str, Any], where: str, default_host_ip: str) -> PortRequest:
    proto_number = item.get("Proto")
    if not isinstance(proto_number, int) or isinstance(proto_number, bool) or proto_number not in PROTOCOLS:
        raise InvalidParameter(f"{where}: unsupported protocol {proto_number!r} (6 = tcp, 17 = udp, 132 = sctp)")
    container_port = _port(item.get("Port"), f"{where}.Port", allow_zero=False)
    first = _port(item.get("HostPort", 0), f"{where}.HostPort", allow_zero=True)
    last = _port(item.get("HostPortEnd", 0), f"{where}.HostPortEnd", allow_zero=True) or first
    if last < first:
        raise InvalidParameter(f"{where}: host port range {first}-{last} is empty")
    if first == 0 and last != 0:
        raise InvalidParameter(f"{where}: host port range {first}-{last} starts at 0")
    host_ip = item.get("HostIP") or default_host_ip
    if not isinstance(host_ip, str):
        raise InvalidParameter(f"{where}.HostIP must be a string, got {type(host_ip).__name__}")
    return PortRequest(PROTOCOLS[proto_number], _host_ip(host_ip, where), first, last, container_port)


def _port(value: Any, what: str, *, allow_zero: bool) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not (0 if allow_zero else 1) <= value <= 65535:
        raise InvalidParameter(f"{what} {value!r} is not a port number ({0 if allow_zero else 1}-65535)")
    return value


def _host_ip(text: str, where: str) -> str:
    try:
        ip = netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError):
        raise InvalidParameter(f"{where}.HostIP {text!r} is not an IP address") from None
    if ip.version != 4:
        raise InvalidParameter(
            f"{where}.HostIP {text}: pynetdrv publishes ports on IPv4 host addresses only (IPv6 is routed, not NATed)"
        )
    return str(ip)


def docker_portmap(mappings: tuple[PortMapping, ...]) -> list[dict[str, Any]]:
    """Mappings in Docker's PortBinding JSON form (EndpointOperInfo)."""
    return [
        {"Proto": NUMBERS[m.proto], "IP": m.container_ip, "Port": m.container_port,
         "HostIP": m.host_ip, "HostPort": m.host_port, "HostPortEnd": m.host_port}
        for m in mappings
    ]
