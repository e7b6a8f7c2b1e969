"""CreateNetwork options: ``-o key=value`` (com.docker.network.generic) and
the flags Docker adds itself, parsed into one typed value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pynetdrv.driver.naming import IFNAMSIZ, valid_ifname
from pynetdrv.errors import InvalidParameter

GENERIC = "com.docker.network.generic"
ENABLE_IPV6 = "com.docker.network.enable_ipv6"
INTERNAL = "com.docker.network.internal"

BRIDGE_NAME = "com.docker.network.bridge.name"
MTU = "com.docker.network.driver.mtu"
#: Every -o key pynetdrv understands.  Anything else is refused by name: a
#: typo must not be ignored silently (an MTU under the wrong key is a classic).
SUPPORTED = (BRIDGE_NAME, MTU)
_DIGITS = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class NetworkOptions:
    bridge_name: str | None = None
    mtu: int | None = None
    internal: bool = False
    ipv6: bool = False


def parse_network_options(options: dict[str, Any]) -> NetworkOptions:
    generic = options.get(GENERIC) or {}
    if not isinstance(generic, dict):
        raise InvalidParameter(f"option {GENERIC} must be an object, got {type(generic).__name__}")
    unknown = sorted(set(generic) - set(SUPPORTED))
    if unknown:
        raise InvalidParameter(
            f"unsupported network option(s) {', '.join(unknown)}; pynetdrv supports {', '.join(SUPPORTED)}"
        )
    return NetworkOptions(
        bridge_name=_bridge_name(generic.get(BRIDGE_NAME)),
        mtu=_mtu(generic.get(MTU)),
        internal=bool(options.get(INTERNAL, False)),
        ipv6=bool(options.get(ENABLE_IPV6, False)),
    )


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
