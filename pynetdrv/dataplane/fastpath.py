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

Kept incrementally: each filter has a handle of ours (u32 ``800::N``), so a change of the wanted
set adds and deletes only the difference.  A device not known to this process (after a restart) or
a step that fails is written anew: its clsact qdisc is deleted and made again, during which packets
take the bridge (slower, never lost).  At most ``MAX_FILTERS`` per device (u32 node ids); beyond, that
device has none.  The filters go with their device.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .linkdump import get_link
from .rtnl import Rtnl, kernel_error, kernel_step
from .vxlan_plan import LocalPort

log = logging.getLogger(__name__)

#: parent handle of clsact's ingress hook (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)).
INGRESS = 0xFFFFFFF2
ETH_P_ALL = 0x0003
PRIO = 1
#: u32's first hash table (800:); a filter's handle is it | node id (1..MAX_FILTERS).
HTID = 0x80000000
MAX_FILTERS = 0xFFF
#: Offset of the destination address in the IPv4 / IPv6 header.
DST_OFFSET = {4: 16, 6: 24}


@dataclass(frozen=True, order=True)
class Redirect:
    """Destination ``ip`` -> egress of link ``target`` (an ifindex)."""

    ip: str
    target: int


def u32_keys(ip: str) -> list[str]:
    """pyroute2's u32 keys matching an IP packet of ``ip``'s version with destination ``ip``
    (offsets from the network header; the version nibble first, as one priority holds both)."""
    addr = ipaddress.ip_address(ip)
    raw = addr.packed
    base = DST_OFFSET[addr.version]
    return [f"0x{addr.version}0000000/0xf0000000+0",
            *(f"0x{raw[i:i + 4].hex()}/0xffffffff+{base + i}" for i in range(0, len(raw), 4))]


def wanted_redirects(vxlan: int, ports: dict[int, LocalPort], remote_ips: Iterable[str]
                     ) -> dict[int, frozenset[Redirect]]:
    """ifindex -> the redirects on its ingress: the VXLAN device's to the local veths, each local
    veth's to the VXLAN device; devices with none left out."""
    remote = frozenset(Redirect(ip, vxlan) for ip in set(remote_ips))
    out = {vxlan: frozenset(Redirect(ip, idx) for idx, p in ports.items() for ip in p.ips)}
    for idx in ports:
        out[idx] = remote
    return {idx: r for idx, r in out.items() if r}


class FastPath:
    """The redirects of every cluster network on this host (see the module's docstring)."""

    def __init__(self, rtnl: Rtnl) -> None:
        self._rtnl = rtnl
        self._written: dict[int, dict[Redirect, int]] = {}  # ifindex -> redirect -> node id
        self._devices: dict[str, set[int]] = {}  # network id -> ifindexes written for it

    async def sync(self, network_id: str, vxlan_ifname: str, local: Sequence[LocalPort],
                   remote_ips: Iterable[str]) -> int:
        """Make the network's redirects exactly these; the number of filters added or removed.  A
        local veth that does not exist (yet or any more) is left out; no local port: none at all."""
        ipr = await self._rtnl.socket()
        vxlan = await self._index(vxlan_ifname)
        ports = {}
        for port in local if vxlan is not None else ():
            idx = await self._index(port.ifname)
            if idx is not None:
                ports[idx] = port
        wanted = wanted_redirects(vxlan, ports, remote_ips) if vxlan is not None and ports else {}
        changed = 0
        for idx in self._devices.get(network_id, set()) - set(wanted):
            changed += len(self._written.pop(idx, {}))
            await self._clear(ipr, idx)
        for idx, redirects in wanted.items():
            changed += await self._device(ipr, idx, redirects)
        self._devices[network_id] = set(wanted)
        return changed

    def forget(self, network_id: str) -> None:
        """The network's devices are gone (with their filters)."""
        for idx in self._devices.pop(network_id, set()):
            self._written.pop(idx, None)

    async def _index(self, ifname: str) -> int | None:
        """The link's index, None if there is none (the light decode: a sync looks up every local veth)."""
        ipr = await self._rtnl.socket()
        try:
            return (await get_link(ipr, ifname)).index
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise kernel_error("look up", ifname, exc) from exc

    async def _device(self, ipr: AsyncIPRoute, idx: int, wanted: frozenset[Redirect]) -> int:
        if len(wanted) > MAX_FILTERS:
            log.warning("fast path: link %d would need %d filters (at most %d): it has none, its traffic "
                        "takes the bridge", idx, len(wanted), MAX_FILTERS)
            wanted = frozenset()
        have = self._written.get(idx)
        if not wanted:
            await self._rewrite(ipr, idx, wanted)
            return len(have or {})
        if have is None:
            return await self._rewrite(ipr, idx, wanted)
        gone, new = set(have) - wanted, wanted - set(have)
        try:
            for r in sorted(gone):
                await self._filter(ipr, "del-filter", idx, r, have.pop(r))
            used = set(have.values())
            free = (n for n in range(1, MAX_FILTERS + 1) if n not in used)
            for r in sorted(new):
                have[r] = next(free)
                await self._filter(ipr, "add-filter", idx, r, have[r])
        except NetlinkError as exc:
            log.warning("fast path on link %d: %s; writing it anew", idx, os.strerror(exc.code))
            return await self._rewrite(ipr, idx, wanted)
        return len(gone) + len(new)

    async def _rewrite(self, ipr: AsyncIPRoute, idx: int, wanted: frozenset[Redirect]) -> int:
        """Everything on the device's ingress deleted, then ``wanted`` written (all or nothing)."""
        self._written.pop(idx, None)
        await self._clear(ipr, idx)
        if not wanted:
            return 0
        with kernel_step("add clsact qdisc to link", str(idx)):
            await ipr.tc("add", "clsact", index=idx)
        written: dict[Redirect, int] = {}
        try:
            for n, r in enumerate(sorted(wanted), start=1):
                await self._filter(ipr, "add-filter", idx, r, n)
                written[r] = n
        except NetlinkError as exc:
            await self._clear(ipr, idx)  # a partial set would be worse than none: all take the bridge
            raise kernel_error("add fast-path filter to link", str(idx), exc) from exc
        self._written[idx] = written
        log.debug("fast path on link %d: %d redirect(s)", idx, len(written))
        return len(written)

    @staticmethod
    async def _filter(ipr: AsyncIPRoute, command: str, idx: int, r: Redirect, node: int) -> None:
        extra = {} if command == "del-filter" else {
            "keys": u32_keys(r.ip),
            "action": {"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": r.target}}
        try:
            await ipr.tc(command, "u32", index=idx, parent=INGRESS, prio=PRIO, protocol=ETH_P_ALL, target=0,
                         handle=HTID | node, **extra)
        except NetlinkError as exc:
            if not (command == "del-filter" and exc.code == errno.ENOENT):
                raise

    async def _clear(self, ipr: AsyncIPRoute, idx: int) -> None:
        try:
            await ipr.tc("del", "clsact", index=idx)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                raise kernel_error("remove fast path of link", str(idx), exc) from exc
