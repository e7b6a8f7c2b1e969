"""The fast path of a cluster network: unicast IP between a container here and one on another host
skips the bridge, by tc redirects between the container's veth and the network's VXLAN device.

Why: the bridge is in the host namespace, where dockerd sets ``bridge-nf-call-iptables=1``, so every
bridged packet goes through the host's netfilter hooks and chains; that cost 10-20 % of cross-host
throughput, below Docker's overlay, whose bridge has a namespace of its own (docs/benchmarks.md).

What is put (clsact qdisc, ingress, u32 filters with a mirred egress redirect):
- on the VXLAN device: per local endpoint address, "destination is it" -> that endpoint's veth;
- on each local endpoint's host-side veth: per remote endpoint address, "destination is it" -> the
  VXLAN device, which sends the frame by its FDB entry for the frame's destination MAC (the remote
  container's: ARP/ND for it are answered by the device's proxy from the same registry).
Everything else (ARP/ND, broadcast, multicast, the gateway, containers on this host, an address not
in the registry yet) takes the bridge as before, so a filter missing or late only costs speed.
Like Docker's overlay, this traffic is not seen by the host's iptables (DOCKER-USER included); a
network with ``enable_icc=false`` gets no fast path (its isolation is iptables rules).

Idempotent by rebuild: what was written on a device is remembered; a different wanted set (or
nothing remembered, after a restart) deletes the device's clsact qdisc and writes it again, during
which packets take the bridge (slower, never lost).  The filters go with their device.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .rtnl import Rtnl, kernel_error, kernel_step
from .vxlan_plan import LocalPort

log = logging.getLogger(__name__)

#: parent handle of clsact's ingress hook (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)).
INGRESS = 0xFFFFFFF2
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
#: u32 filter priority per address family (one protocol per priority).
PRIO = {4: 1, 6: 2}
#: Offset of the destination address in the IPv4 / IPv6 header.
DST_OFFSET = {4: 16, 6: 24}


@dataclass(frozen=True, order=True)
class Redirect:
    """Destination ``ip`` -> egress of link ``target`` (an ifindex)."""

    ip: str
    target: int


def u32_keys(ip: str) -> list[str]:
    """pyroute2's u32 keys matching destination address ``ip`` (network header offsets)."""
    addr = ipaddress.ip_address(ip)
    raw = addr.packed
    base = DST_OFFSET[addr.version]
    return [f"0x{raw[i:i + 4].hex()}/0xffffffff+{base + i}" for i in range(0, len(raw), 4)]


def wanted_redirects(vxlan: int, ports: dict[int, LocalPort], remote_ips: Iterable[str]
                     ) -> dict[int, tuple[Redirect, ...]]:
    """ifindex -> the redirects on its ingress: the VXLAN device's to the local veths, each local
    veth's to the VXLAN device."""
    remote = tuple(sorted(Redirect(ip, vxlan) for ip in set(remote_ips)))
    out = {vxlan: tuple(sorted(Redirect(ip, idx) for idx, p in ports.items() for ip in p.ips))}
    for idx in ports:
        out[idx] = remote
    return out


class FastPath:
    """The redirects of every cluster network on this host (see the module's docstring)."""

    def __init__(self, rtnl: Rtnl) -> None:
        self._rtnl = rtnl
        self._written: dict[int, tuple[Redirect, ...]] = {}  # ifindex -> what is on it
        self._devices: dict[str, set[int]] = {}  # network id -> ifindexes written for it

    async def sync(self, network_id: str, vxlan_ifname: str, local: Sequence[LocalPort],
                   remote_ips: Iterable[str]) -> int:
        """Make the network's redirects exactly these; the number of devices rewritten.  A local
        veth that does not exist (yet or any more) is left out; no local port: nothing at all."""
        ipr = await self._rtnl.socket()
        vxlan = await self._index(vxlan_ifname)
        if vxlan is None:
            return 0
        ports = {}
        for port in local:
            idx = await self._index(port.ifname)
            if idx is not None:
                ports[idx] = port
        wanted = wanted_redirects(vxlan, ports, remote_ips) if ports else {}
        wanted = {idx: r for idx, r in wanted.items() if r}
        before = self._devices.get(network_id, set())
        changed = 0
        for idx in before - set(wanted):
            if self._written.pop(idx, None):
                await self._clear(ipr, idx)
                changed += 1
        for idx, redirects in wanted.items():
            if self._written.get(idx) == redirects:
                continue
            await self._write(ipr, idx, redirects)
            changed += 1
        self._devices[network_id] = set(wanted)
        return changed

    def forget(self, network_id: str) -> None:
        """The network's devices are gone (with their filters)."""
        for idx in self._devices.pop(network_id, set()):
            self._written.pop(idx, None)

    async def _index(self, ifname: str) -> int | None:
        ipr = await self._rtnl.socket()
        try:
            found = await ipr.link_lookup(ifname=ifname)
        except NetlinkError as exc:
            raise kernel_error("look up", ifname, exc) from exc
        return found[0] if found else None

    async def _clear(self, ipr: AsyncIPRoute, idx: int) -> None:
        try:
            await ipr.tc("del", "clsact", index=idx)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                raise kernel_error("remove fast path of link", str(idx), exc) from exc

    async def _write(self, ipr: AsyncIPRoute, idx: int, redirects: tuple[Redirect, ...]) -> None:
        self._written.pop(idx, None)
        await self._clear(ipr, idx)
        with kernel_step("add clsact qdisc to link", str(idx)):
            await ipr.tc("add", "clsact", index=idx)
        try:
            for r in redirects:
                version = ipaddress.ip_address(r.ip).version
                await ipr.tc(
                    "add-filter", "u32", index=idx, parent=INGRESS, prio=PRIO[version],
                    protocol=ETH_P_IP if version == 4 else ETH_P_IPV6, target=0, keys=u32_keys(r.ip),
                    action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": r.target})
        except NetlinkError as exc:
            await self._clear(ipr, idx)  # a partial set would be worse than none: all take the bridge
            raise kernel_error("add fast-path filter to link", str(idx), exc) from exc
        self._written[idx] = redirects
        log.debug("fast path on link %d: %d redirect(s)", idx, len(redirects))
