"""The kernel side of ``pynetdrv check``: every link with its kind, alias,
MTU, master and global addresses, read over rtnetlink (pyroute2), in the
host namespace or a named one.  Read-only: it never changes a link."""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

from pyroute2 import AsyncIPRoute

from pynetdrv.check.model import KernelLink

IFF_UP = 0x1
RT_SCOPE_UNIVERSE = 0


class KernelView(Protocol):
    async def links(self) -> list[KernelLink]:
        """Every link of the namespace."""


class NetlinkKernelView:
    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns

    async def links(self) -> list[KernelLink]:
        ipr = AsyncIPRoute(**({"netns": self._netns} if self._netns else {}))
        try:
            raw = [link async for link in await ipr.link("dump")]
            addrs: dict[int, list[str]] = {}
            async for a in await ipr.addr("dump"):
                if a["scope"] == RT_SCOPE_UNIVERSE:
                    ip = a.get("local") or a.get("address")
                    addrs.setdefault(a["index"], []).append(str(ipaddress.ip_interface(f"{ip}/{a['prefixlen']}")))
        finally:
            ipr.close()
        names = {link["index"]: link.get("ifname") for link in raw}
        return [_link(link, names, addrs) for link in raw]


def _link(link: Any, names: dict[int, str], addrs: dict[int, list[str]]) -> KernelLink:
    master = link.get("master")
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    alias = link.get("ifalias")
    return KernelLink(
        name=link.get("ifname"), kind=str(kind) if kind else None, alias=str(alias) if alias else None,
        mtu=int(link.get("mtu") or 0), up=bool(link["flags"] & IFF_UP),
        master=names.get(master) if master else None,
        addresses=tuple(sorted(addrs.get(link["index"], []))),
    )
