"""Helpers for the netns tests: namespaces, reading kernel state back, and
running commands (iptables, ping) inside a namespace."""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

IFF_UP = 0x1
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
ICMP_PING = Path(__file__).with_name("icmp_ping.py")


@contextmanager
def throwaway_netns() -> Iterator[str]:
    name = f"pndt-{secrets.token_hex(4)}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)


def in_netns(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{name}", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def iptables_s(name: str | None, tool: str = "iptables") -> list[str]:
    """``iptables -S`` lines in namespace ``name`` (None = host, read only)."""
    argv = [tool, "-w", "-S"]
    done = (
        in_netns(name, *argv)
        if name
        else subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def ping(name: str, addr: str) -> bool:
    """One echo request from namespace ``name``; True if answered within 2 s.
    Uses iputils ping when installed, else a raw-socket ICMP echo in Python."""
    if shutil.which("ping"):
        done = in_netns(name, "ping", "-c1", "-W2", addr)
    else:
        done = in_netns(name, sys.executable, str(ICMP_PING), addr)
    return done.returncode == 0


async def get_link(ipr: AsyncIPRoute, name: str) -> Any:
    """The link message, or None if there is no such link."""
    try:
        (link,) = await ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code == 19:
            return None
        raise
    return link


async def link_names(ipr: AsyncIPRoute) -> set[str]:
    return {link.get("ifname") async for link in await ipr.link("dump")}


async def global_addresses(ipr: AsyncIPRoute, index: int) -> set[str]:
    """CIDRs of the universe-scope addresses of a link (no fe80::)."""
    found = set()
    async for a in await ipr.addr("dump", index=index):
        if a["scope"] == 0:
            ip = a.get("local") or a.get("address")
            found.add(str(ipaddress.ip_interface(f"{ip}/{a['prefixlen']}")))
    return found


async def add_foreign_veth(ipr: AsyncIPRoute, name: str, peer: str, mtu: int = 1500) -> int:
    """A link pynetdrv does not own (no alias).  veth, not dummy: the dummy
    module is not available on every kernel this runs on."""
    await ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer, "mtu": mtu}, mtu=mtu)
    return (await ipr.link_lookup(ifname=name))[0]


async def add_foreign_bridge(ipr: AsyncIPRoute, name: str, mtu: int = 1500) -> int:
    await ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
    return (await ipr.link_lookup(ifname=name))[0]
