"""Writing /proc/sys/net values, in the host or in a named namespace."""

from __future__ import annotations

from pathlib import Path

from .base import DataplaneError
from .netns_call import in_netns

PROC_SYS = Path("/proc/sys")


def _path(key: str) -> Path:
    # "net.ipv4.conf.br0.route_localnet" -> net/ipv4/conf/br0/route_localnet;
    # interface names may contain dots, so callers pass path parts instead.
    return PROC_SYS.joinpath(*key.split("/"))


def _write_all(values: dict[str, str], if_present: bool) -> list[str]:
    """Set each key (a path under /proc/sys, '/'-separated) if it differs;
    returns the keys changed.  OSError names the key.  ``if_present``: skip
    keys that do not exist (an interface that is gone)."""
    changed = []
    for key, value in values.items():
        path = _path(key)
        if if_present and not path.exists():
            continue
        try:
            if path.read_text().strip() == value:
                continue
            path.write_text(value + "\n")
        except OSError as e:
            raise OSError(e.errno, f"sysctl {key.replace('/', '.')}={value}: {e.strerror}") from None
        changed.append(key)
    return changed


def exists(key: str) -> bool:
    return _path(key).exists()


async def write_sysctls(netns: str | None, values: dict[str, str], *, if_present: bool = False) -> list[str]:
    try:
        return await in_netns(netns, lambda: _write_all(values, if_present))
    except OSError as e:
        raise DataplaneError(str(e)) from e


async def sysctl_exists(netns: str | None, key: str) -> bool:
    return await in_netns(netns, lambda: exists(key))
