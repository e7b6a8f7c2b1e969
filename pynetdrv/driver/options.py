"""CreateNetwork options: ``-o key=value`` (com.docker.network.generic) and
the flags Docker adds itself, parsed into one typed value.

The keys are those of Docker's built-in bridge, so a compose file moves
between the two drivers unchanged.  A key pynetdrv does not know is reported
in the log (Docker passes it on, the user may have meant another driver's);
an invalid value of a key it knows is an error naming the key."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import netaddr

from pynetdrv.driver.naming import IFNAMSIZ, valid_ifname
from pynetdrv.errors import InvalidParameter

log = logging.getLogger(__name__)

GENERIC = "com.docker.network.generic"
ENABLE_IPV6 = "com.docker.network.enable_ipv6"
INTERNAL = "com.docker.network.internal"

BRIDGE_NAME = "com.docker.network.bridge.name"
MTU = "com.docker.network.driver.mtu"
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
ICC = "com.docker.network.bridge.enable_icc"
HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"
#: Every -o key pynetdrv understands.
SUPPORTED = (BRIDGE_NAME, MTU, MASQUERADE, ICC, HOST_BINDING_IPV4)
#: Go's strconv.ParseBool, which Docker's bridge uses for these options.
TRUE = {"1", "t", "T", "TRUE", "true", "True"}
FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_DIGITS = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class NetworkOptions:
    bridge_name: str | None = None
    mtu: int | None = None
    internal: bool = False
    ipv6: bool = False
    masquerade: bool = True
    icc: bool = True
    host_binding_ipv4: str = "0.0.0.0"
    #: -o keys pynetdrv does not know (reported, otherwise ignored).
    unknown: tuple[str, ...] = ()


def parse_network_options(options: dict[str, Any]) -> NetworkOptions:
    generic = options.get(GENERIC) or {}
    if not isinstance(generic, dict):
        raise InvalidParameter(f"option {GENERIC} must be an object, got {type(generic).__name__}")
    parsed = NetworkOptions(
        bridge_name=_bridge_name(generic.get(BRIDGE_NAME)),
        mtu=_mtu(generic.get(MTU)),
        internal=bool(options.get(INTERNAL, False)),
        ipv6=bool(options.get(ENABLE_IPV6, False)),
        masquerade=_bool(generic, MASQUERADE, default=True),
        icc=_bool(generic, ICC, default=True),
        host_binding_ipv4=_host_binding(generic.get(HOST_BINDING_IPV4)),
        unknown=tuple(sorted(str(k) for k in set(generic) - set(SUPPORTED))),
    )
    if parsed.unknown:
        log.warning(
            "ignoring network option(s) pynetdrv does not know: %s (known: %s)",
            # repr: a key is user input, and a newline in it must not forge a log line
            ", ".join(repr(k) for k in parsed.unknown), ", ".join(SUPPORTED),
        )
    return parsed


def _bridge_name(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not valid_ifname(value):
        raise InvalidParameter(
            f"option {BRIDGE_NAME}={value!r} is not a valid interface name "
            f"(1-{IFNAMSIZ} characters of letters, digits, '_', '.', '-', not starting with '-')"
        )
    return value


def _mtu(value: Any) -> int | None:
    if value is None or value == "":
        return None
    # Plain ASCII digits only: int() would also take " 1500", "1_500", "١٥٠٠".
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        raise InvalidParameter(f"option {MTU}={value!r} is not a number")
    mtu = int(value)
    if not 68 <= mtu <= 65535:
        raise InvalidParameter(f"option {MTU}={mtu} is out of range (68-65535)")
    return mtu


def _bool(generic: dict[str, Any], key: str, *, default: bool) -> bool:
    value = generic.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise InvalidParameter(f"option {key}={value!r} is not a boolean (true or false)")


def _host_binding(value: Any) -> str:
    if value is None or value == "":
        return "0.0.0.0"
    try:
        ip = netaddr.IPAddress(value) if isinstance(value, str) and "/" not in value else None
    except (netaddr.AddrFormatError, ValueError):
        ip = None
    if ip is None or ip.version != 4:
        raise InvalidParameter(f"option {HOST_BINDING_IPV4}={value!r} is not an IPv4 address")
    return str(ip)
