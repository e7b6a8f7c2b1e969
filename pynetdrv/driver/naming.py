"""Kernel names and MACs derived from Docker's IDs.

Derived, not random: after a restart or reboot the same network gets the
same bridge name and MAC, so reconcile can recreate exactly what existed.
Names fit IFNAMSIZ (15 characters).
"""

from __future__ import annotations

import hashlib
import re

IFNAMSIZ = 15
#: Not starting with '-': ``ip link show -x`` would read it as an option.
_IFNAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,14}")
#: Docker's form (lower or upper case hex), nothing else reaches netlink.
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def _short(object_id: str) -> str:
    """First 10 hex of a Docker ID (what `docker network ls` shows, shortened);
    a hash for anything that is not hex, so names stay valid."""
    if re.fullmatch(r"[0-9a-f]{10,}", object_id):
        return object_id[:10]
    return hashlib.sha256(object_id.encode()).hexdigest()[:10]


def bridge_name(network_id: str) -> str:
    return f"pnbr-{_short(network_id)}"


def veth_names(endpoint_id: str) -> tuple[str, str]:
    """(host end, container end)."""
    short = _short(endpoint_id)
    return f"pnve-{short}", f"pnvc-{short}"


def derived_mac(object_id: str) -> str:
    """A locally administered unicast MAC (first octet 0x02), stable per ID."""
    digest = hashlib.sha256(object_id.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def valid_ifname(name: str) -> bool:
    # fullmatch: with match, "$" would also accept a trailing newline.
    return bool(_IFNAME.fullmatch(name)) and name not in (".", "..")


def valid_mac(mac: str) -> bool:
    """``aa:bb:cc:dd:ee:ff``, unicast (multicast bit clear) and not all zero:
    the kernel refuses the others on a veth."""
    return bool(_MAC.fullmatch(mac)) and not int(mac[:2], 16) & 1 and mac.strip("0:") != ""
