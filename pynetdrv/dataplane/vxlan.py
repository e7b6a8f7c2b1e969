"""The VXLAN data plane of a multi-host network, over rtnetlink (pyroute2).

Per network a VXLAN device (learning off, ARP/ND proxy on) enslaved to the
network's bridge; on it, per remote endpoint a permanent neighbour entry per
IP and an FDB entry (MAC -> VTEP), and per peer host an all-zero FDB entry
for broadcast/multicast/unknown unicast (head-end replication).  What the
entries must be is computed in ``vxlan_plan``; here they are read and written.

Ownership, like every link of ours (see ``base``): the device carries the
alias ``<instance>:vxlan:<network id>`` and is born with ``birth_mac``, so a
crash before the alias still leaves it provably ours.  Entries on it carry a
mark too: neighbours NDA_PROTOCOL ``NEIGH_PROTOCOL``, FDB entries
NTF_EXT_LEARNED ("added by a control plane", never aged).  Entries without
the mark, and anything on other devices, are never changed.

Round trips: ``sync`` and the per-endpoint/per-host steps read the device's
FDB and neighbours (one dump each) and send every change in one batch.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nlsocket import NetlinkRequest
from pyroute2.netlink.rtnl import RTM_DELNEIGH, RTM_NEWNEIGH
from pyroute2.netlink.rtnl.ndmsg import NTF_EXT_LEARNED, NTF_SELF, ndmsg

from ..driver.naming import valid_ifname
from .base import DEFAULT_INSTANCE, DataplaneError, ForeignLinkError, birth_mac, owner_alias, parse_owner_alias
from .fastpath import FastPath
from .linkdump import dump_links, get_link
from .rtnl import Msg, Rtnl, kernel_error, kernel_step
from .vxlan_plan import (
    OVERHEAD,
    Actual,
    FdbEntry,
    LocalPort,
    NeighEntry,
    Plan,
    RemoteEndpoint,
    VxlanInputError,
    Wanted,
    check_port,
    check_vni,
    norm_ip,
    plan,
    removal,
    vxlan_device_name,
    wanted_entries,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 4789
#: NDA_PROTOCOL of pynetdrv's neighbour entries (any u8 no routing daemon uses).
NEIGH_PROTOCOL = 0x70
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
IFF_UP = 0x1
#: Messages per send in a batch (well inside the socket buffers).
BATCH = 128


def vxlan_alias(network_id: str, instance: str = DEFAULT_INSTANCE) -> str:
    return f"{instance}:vxlan:{network_id}"


@dataclass(frozen=True)
class VxlanNetwork:
    """Which network a VXLAN device serves: its Docker ID, its bridge (one
    of ours), and the device's name (``vxlan_device_name`` by default)."""

    network_id: str
    bridge: str
    device: str = ""

    @property
    def ifname(self) -> str:
        return self.device or vxlan_device_name(self.network_id)


@dataclass(frozen=True)
class VxlanDeviceState:
    """A device of ours as the kernel has it, with our entries on it."""

    name: str
    network_id: str
    vni: int | None
    port: int | None
    local: str | None
    #: Name of the underlay link it is bound to (None: not bound).
    underlay: str | None
    master: str | None
    up: bool
    mtu: int | None
    learning: bool
    proxy: bool
    fdb: frozenset[FdbEntry]
    neigh: frozenset[NeighEntry]


@dataclass(frozen=True)
class _Device:
    """The parts of a full link decode this module compares."""

    index: int
    alias: str | None
    address: str | None
    kind: str | None
    flags: int
    mtu: int | None
    master: int | None
    vni: int | None
    port: int | None
    local: str | None
    link: int | None
    learning: bool
    proxy: bool


def _device(msg: Msg) -> _Device:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    data = info.get_attr("IFLA_INFO_DATA") if info is not None and kind == "vxlan" else None

    def vx(name: str) -> Any:
        return data.get_attr(name) if data is not None else None

    local = vx("IFLA_VXLAN_LOCAL") or vx("IFLA_VXLAN_LOCAL6")
    return _Device(
        index=msg["index"], alias=msg.get_attr("IFLA_IFALIAS") or None, address=msg.get_attr("IFLA_ADDRESS"),
        kind=kind, flags=msg["flags"], mtu=msg.get_attr("IFLA_MTU"), master=msg.get_attr("IFLA_MASTER"),
        vni=vx("IFLA_VXLAN_ID"), port=vx("IFLA_VXLAN_PORT"),
        local=str(ipaddress.ip_address(local)) if local else None, link=vx("IFLA_VXLAN_LINK") or None,
        learning=bool(vx("IFLA_VXLAN_LEARNING")), proxy=bool(vx("IFLA_VXLAN_PROXY")),
    )


def _ndmsg(kind: int, nl_flags: int, family: int, index: int, state: int, flags: int,
           attrs: list[list[Any]]) -> Msg:
    msg = ndmsg()
    msg["header"]["type"] = kind
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | nl_flags
    msg["family"] = family
    msg["ifindex"] = index
    msg["state"] = state
    msg["flags"] = flags
    msg["ndm_type"] = 0
    msg["attrs"] = attrs
    return msg


@dataclass(frozen=True)
class _Request:
    step: str
    msg: Msg
    #: Errnos meaning "already as wanted" (a delete that finds nothing).
    fine: tuple[int, ...] = ()


def _requests(index: int, device: str, changes: Plan) -> list[_Request]:
    out = []
    for op in changes.fdb:
        e = op.entry
        what = f"FDB entry {e.mac} dst {e.dst} on {device}"
        attrs: list[list[Any]] = [["NDA_LLADDR", e.mac], ["NDA_DST", e.dst]]
        if op.action == "del":
            out.append(_Request(f"remove {what}", _ndmsg(RTM_DELNEIGH, 0, socket.AF_BRIDGE, index, 0, NTF_SELF, attrs),
                                (errno.ENOENT,)))
        else:
            mode = NLM_F_REPLACE if op.action == "replace" else NLM_F_APPEND
            out.append(_Request(f"add {what}", _ndmsg(RTM_NEWNEIGH, NLM_F_CREATE | mode, socket.AF_BRIDGE, index,
                                                      NUD_PERMANENT, NTF_SELF | NTF_EXT_LEARNED, attrs)))
    for nop in changes.neigh:
        n = nop.entry
        family = socket.AF_INET6 if ipaddress.ip_address(n.ip).version == 6 else socket.AF_INET
        what = f"neighbour {n.ip} lladdr {n.mac} on {device}"
        if nop.action == "del":
            out.append(_Request(f"remove {what}", _ndmsg(RTM_DELNEIGH, 0, family, index, 0, 0, [["NDA_DST", n.ip]]),
                                (errno.ENOENT,)))
        else:
            nattrs: list[list[Any]] = [["NDA_DST", n.ip], ["NDA_LLADDR", n.mac], ["NDA_PROTOCOL", NEIGH_PROTOCOL]]
            out.append(_Request(f"add {what}", _ndmsg(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, family, index,
                                                      NUD_PERMANENT, 0, nattrs)))
    return out


async def _batch(ipr: AsyncIPRoute, requests: list[_Request]) -> None:
    """Send the requests, BATCH per send, reading every reply; raise the
    first failure (by its step) after all replies are read."""
    failure: DataplaneError | None = None
    for start in range(0, len(requests), BATCH):
        chunk = requests[start:start + BATCH]
        pending = [NetlinkRequest(ipr, r.msg) for r in chunk]
        try:
            data = b""
            for request in pending:
                await request.prepare()
                data += request.msg.data
            try:
                ipr.send(data)
            except NetlinkError as exc:
                raise DataplaneError(f"{chunk[0].step}: {os.strerror(exc.code)}") from exc
            for index in range(len(chunk)):
                request = pending.pop(0)
                try:
                    async for _reply in request.response():
                        pass
                except NetlinkError as exc:
                    if exc.code not in chunk[index].fine:
                        failure = failure or DataplaneError(f"{chunk[index].step}: {os.strerror(exc.code)}")
        finally:
            for request in pending:
                request.cleanup()
    if failure is not None:
        raise failure


class VxlanDataplane:
    """The VXLAN steps on the kernel, in the host or a named network namespace."""

    def __init__(
        self,
        netns: str | None = None,
        instance: str = DEFAULT_INSTANCE,
        socket_factory: Callable[..., AsyncIPRoute] = AsyncIPRoute,
        slow_socket_factory: Callable[..., IPRoute] = IPRoute,
    ) -> None:
        self._rtnl = Rtnl(netns, socket_factory, slow_socket_factory)
        self._instance = instance
        self._fast = FastPath(self._rtnl)

    async def close(self) -> None:
        await self._rtnl.close()

    # -- reading -----------------------------------------------------------

    async def _get(self, name: str) -> _Device | None:
        ipr = await self._rtnl.socket()
        try:
            (msg,) = await ipr.link("get", ifname=name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise kernel_error("read link", name, exc) from exc
        return _device(msg)

    def _ours(self, dev: _Device, network_id: str) -> bool:
        return dev.alias == vxlan_alias(network_id, self._instance)

    def _unmarked_ours(self, dev: _Device, name: str) -> bool:
        return dev.alias is None and (dev.address or "").lower() == birth_mac(self._instance, name)

    async def _entries(self, index: int | None, device: str) -> dict[int, Actual]:
        """Our and others' (permanent) entries per device index, read with one
        FDB and one neighbour dump (filtered to ``index`` unless None)."""
        ipr = await self._rtnl.socket()
        fdb: dict[int, tuple[set[FdbEntry], set[FdbEntry]]] = {}
        neigh: dict[int, tuple[set[NeighEntry], set[NeighEntry]]] = {}
        where = {"ifindex": index} if index is not None else {}
        with kernel_step("dump FDB of", device):
            async for m in await ipr.fdb("dump", **where):
                if not m["flags"] & NTF_SELF or (index is not None and m["ifindex"] != index):
                    continue  # the bridge's own (master) entries are the bridge's business
                mac, dst = (m.get_attr("NDA_LLADDR") or "").lower(), m.get_attr("NDA_DST")
                ours, foreign = fdb.setdefault(m["ifindex"], (set(), set()))
                entry = FdbEntry(mac, str(ipaddress.ip_address(dst)) if dst else "")
                if m["flags"] & NTF_EXT_LEARNED and dst:
                    ours.add(entry)
                elif m["state"] & (NUD_PERMANENT | NUD_NOARP):
                    foreign.add(entry)
        with kernel_step("dump neighbours of", device):
            async for m in await ipr.neigh("dump", **where):
                dst = m.get_attr("NDA_DST")
                if dst is None or ipaddress.ip_address(dst).is_multicast or (
                        index is not None and m["ifindex"] != index):
                    continue  # multicast ones are the kernel's own (NOARP)
                ours_n, foreign_n = neigh.setdefault(m["ifindex"], (set(), set()))
                n = NeighEntry(str(ipaddress.ip_address(dst)), (m.get_attr("NDA_LLADDR") or "").lower(),
                               permanent=m["state"] == NUD_PERMANENT)
                if m.get_attr("NDA_PROTOCOL") == NEIGH_PROTOCOL:
                    ours_n.add(n)
                elif m["state"] & (NUD_PERMANENT | NUD_NOARP):
                    foreign_n.add(n)
        return {
            i: Actual(frozenset(fdb.get(i, (set(), set()))[0]), frozenset(neigh.get(i, (set(), set()))[0]),
                      frozenset(fdb.get(i, (set(), set()))[1]), frozenset(neigh.get(i, (set(), set()))[1]))
            for i in set(fdb) | set(neigh)
        }

    async def list_vxlan_state(self) -> list[VxlanDeviceState]:
        """Every VXLAN device of this instance with our entries on it (for
        ``pynetdrv check``): one link dump, one get per device of ours, one
        FDB and one neighbour dump."""
        ipr = await self._rtnl.socket()
        with kernel_step("dump", "links"):
            links = await dump_links(ipr)
        names = {link.index: link.ifname for link in links}
        prefix = f"{self._instance}:vxlan:"
        mine = [link for link in links if link.kind == "vxlan" and link.ifname and (
            (link.alias or "").startswith(prefix)
            or (not link.alias and (link.address or "") == birth_mac(self._instance, link.ifname)))]
        if not mine:
            return []
        entries = await self._entries(None, "all devices")
        found = []
        for link in mine:
            assert link.ifname is not None
            dev = await self._get(link.ifname)
            if dev is None:
                continue  # removed meanwhile
            actual = entries.get(dev.index, Actual())
            found.append(VxlanDeviceState(
                name=link.ifname, network_id=(dev.alias or "")[len(prefix):], vni=dev.vni, port=dev.port,
                local=dev.local, underlay=names.get(dev.link) if dev.link else None,
                master=names.get(dev.master) if dev.master else None, up=bool(dev.flags & IFF_UP), mtu=dev.mtu,
                learning=dev.learning, proxy=dev.proxy, fdb=actual.fdb, neigh=actual.neigh,
            ))
        return found

    # -- the device ----------------------------------------------------------

    async def ensure_vxlan(self, network: VxlanNetwork, vni: int, local_ip: str, port: int = DEFAULT_PORT,
                           underlay_dev: str | None = None, mtu: int | None = None) -> bool:
        """Create or repair the network's VXLAN device: VNI, UDP port, local
        VTEP address (an address of this host), bound to ``underlay_dev`` if
        given, learning off, proxy on, enslaved to the network's bridge, up,
        MTU ``mtu`` or the underlay's minus the encapsulation (50 over IPv4,
        70 over IPv6).  A device of ours with another VNI/port/local/underlay
        is made again; its MTU, master and state are set in place.  True if
        the device was (re)created: it holds no entries, sync it."""
        name = network.ifname
        vni, port = check_vni(vni), check_port(port)
        local = norm_ip(local_ip, f"vxlan {name}: local VTEP address")
        if not valid_ifname(name):
            raise VxlanInputError(f"vxlan device name {name!r} is not a valid interface name")
        if mtu is not None and (isinstance(mtu, bool) or not 68 <= mtu <= 65535):
            raise VxlanInputError(f"vxlan {name}: MTU {mtu!r} is outside 68..65535")
        bridge = await self._bridge_index(network)
        underlay, underlay_mtu = await self._underlay(name, local, underlay_dev)
        want_mtu = mtu if mtu is not None else underlay_mtu - OVERHEAD[local.version]
        if want_mtu < 68:
            raise VxlanInputError(f"vxlan {name}: underlay MTU {underlay_mtu} leaves {want_mtu} for the network")
        want = {"vni": vni, "port": port, "local": str(local), "link": underlay}
        dev = await self._claim(network, want)
        created = dev is None
        if dev is None:
            dev = await self._create(network, vni, local, port, underlay, want_mtu, bridge)
        if dev is None:  # someone created the name meanwhile: the same checks on theirs
            dev = await self._claim(network, want)
            if dev is None:
                raise DataplaneError(f"create vxlan {name}: the name was taken, then freed, meanwhile")
            created = False
        await self._fix(dev, name, network.bridge, bridge, want_mtu)
        return created

    async def underlay_mtu(self, local_ip: str) -> int:
        """The MTU of the link holding ``local_ip`` (an address of this host)."""
        local = norm_ip(local_ip, "local VTEP address")
        return (await self._underlay(str(local), local, None))[1]

    async def _claim(self, network: VxlanNetwork, want: dict[str, object]) -> _Device | None:
        """The existing device if it is ours and right in what cannot be
        changed in place (VNI, port, local address, underlay, learning,
        proxy); None if there is none, or once a wrong one of ours (or a
        half-made leftover) is deleted.  ForeignLinkError for anyone else's."""
        name = network.ifname
        dev = await self._get(name)
        if dev is None:
            return None
        if self._unmarked_ours(dev, name):
            log.info("removing %s: created by an earlier run that died before marking it", name)
            await self._delete(dev.index, name, "delete unmarked leftover")
            return None
        if not self._ours(dev, network.network_id):
            raise ForeignLinkError(f"link {name} exists and was not created by pynetdrv for network "
                                   f"{network.network_id[:12]}")
        have = {"vni": dev.vni, "port": dev.port, "local": dev.local, "link": dev.link}
        if dev.kind != "vxlan" or have != want or dev.learning or not dev.proxy:
            log.warning("vxlan %s: %s, wanted %s (learning %s, proxy %s): making it again",
                        name, have, want, dev.learning, dev.proxy)
            await self._delete(dev.index, name, "delete wrong vxlan")
            return None
        return dev

    async def _bridge_index(self, network: VxlanNetwork) -> int:
        ipr = await self._rtnl.socket()
        try:
            link = await get_link(ipr, network.bridge)
        except NetlinkError as exc:
            raise kernel_error(f"vxlan {network.ifname}: read bridge", network.bridge, exc) from exc
        if link.alias != owner_alias("bridge", network.network_id, self._instance) or link.kind != "bridge":
            parsed = parse_owner_alias(link.alias, self._instance)
            whose = f"network {parsed[1][:12]}'s" if parsed and parsed[0] == "bridge" else "not pynetdrv's"
            raise ForeignLinkError(f"vxlan {network.ifname}: link {network.bridge} is {whose} bridge, not the one "
                                   f"of network {network.network_id[:12]}")
        return link.index

    async def _underlay(self, name: str, local: ipaddress.IPv4Address | ipaddress.IPv6Address,
                        underlay_dev: str | None) -> tuple[int | None, int]:
        """(index to bind to or None, underlay MTU).  The local address must be
        one of this host's; without ``underlay_dev`` the link holding it is
        the underlay."""
        ipr = await self._rtnl.socket()
        family = socket.AF_INET6 if local.version == 6 else socket.AF_INET
        holder = None
        with kernel_step("dump addresses for", name):
            async for a in await ipr.addr("dump", family=family):
                if ipaddress.ip_address(a.get("local") or a.get("address")) == local:
                    holder = a["index"]
        if holder is None:
            raise VxlanInputError(f"vxlan {name}: local VTEP address {local} is not an address of this host")
        if underlay_dev is not None:
            try:
                link = await get_link(ipr, underlay_dev)
            except NetlinkError as exc:
                raise kernel_error(f"vxlan {name}: read underlay device", underlay_dev, exc) from exc
            return link.index, link.mtu or 1500
        with kernel_step(f"vxlan {name}: read the link holding", str(local)):
            (msg,) = await ipr.link("get", index=holder)
        return None, int(msg.get_attr("IFLA_MTU"))

    async def _create(self, network: VxlanNetwork, vni: int, local: ipaddress.IPv4Address | ipaddress.IPv6Address,
                      port: int, underlay: int | None, mtu: int, bridge: int) -> _Device | None:
        """Create the device enslaved and up, then mark it; None if the name
        was taken meanwhile.  Undone if marking fails."""
        name = network.ifname
        ipr = await self._rtnl.socket()
        attrs: dict[str, Any] = {
            "ifname": name, "kind": "vxlan", "vxlan_id": vni, "vxlan_port": port, "vxlan_learning": 0,
            "vxlan_proxy": 1, "address": birth_mac(self._instance, name), "mtu": mtu, "master": bridge,
            "state": "up", ("vxlan_local6" if local.version == 6 else "vxlan_local"): str(local),
        }
        if underlay is not None:
            attrs["vxlan_link"] = underlay
        log.debug("create vxlan %s: %s", name, attrs)
        try:
            await ipr.link("add", **attrs)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise kernel_error("create vxlan", name, exc) from exc
            if await self._get(name) is not None:
                return None
            holder = await self._vni_holder(vni, port)
            raise DataplaneError(f"create vxlan {name}: VNI {vni} on UDP port {port} is already used by "
                                 f"{holder or 'another device'}") from exc
        try:
            dev = await self._get(name)
            if dev is None:
                raise DataplaneError(f"create vxlan {name}: gone right after creation")
            with kernel_step("set alias", name):
                await ipr.link("set", index=dev.index, ifalias=vxlan_alias(network.network_id, self._instance))
            return dev
        except BaseException:
            await self._undo(name)
            raise

    async def _vni_holder(self, vni: int, port: int) -> str | None:
        ipr = await self._rtnl.socket()
        for link in await dump_links(ipr):
            if link.kind == "vxlan" and link.ifname:
                dev = await self._get(link.ifname)
                if dev is not None and dev.vni == vni and dev.port == port:
                    return link.ifname
        return None

    async def _fix(self, dev: _Device, name: str, bridge_name: str, bridge: int, mtu: int) -> None:
        ipr = await self._rtnl.socket()
        if dev.mtu != mtu:
            with kernel_step("set mtu", name):
                await ipr.link("set", index=dev.index, mtu=mtu)
        if dev.master != bridge:
            with kernel_step(f"enslave {name} to", bridge_name):
                await ipr.link("set", index=dev.index, master=bridge)
        if not dev.flags & IFF_UP:
            with kernel_step("bring up", name):
                await ipr.link("set", index=dev.index, state="up")

    async def _delete(self, index: int, name: str, step: str) -> None:
        try:
            await self._rtnl.off_loop(lambda ipr: ipr.link("del", index=index))
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise kernel_error(step, name, exc) from exc

    async def _undo(self, name: str) -> None:
        try:
            dev = await self._get(name)
            if dev is not None:
                await self._delete(dev.index, name, "undo vxlan")
        except DataplaneError as exc:
            log.warning("could not remove half-created vxlan %s: %s", name, exc)

    async def remove_vxlan(self, network: VxlanNetwork) -> None:
        """Remove the device (and with it every entry on it) if it is ours;
        nothing if it is gone; a device of someone else's is left alone."""
        name = network.ifname
        self._fast.forget(network.network_id)
        dev = await self._get(name)
        if dev is None:
            return
        if not self._ours(dev, network.network_id) and not self._unmarked_ours(dev, name):
            log.warning("not removing link %s: it is not pynetdrv's vxlan of network %s", name, network.network_id)
            return
        await self._delete(dev.index, name, "delete vxlan")

    # -- entries -------------------------------------------------------------

    async def _own_device(self, network: VxlanNetwork) -> _Device:
        name = network.ifname
        dev = await self._get(name)
        if dev is None:
            raise DataplaneError(f"vxlan {name}: {os.strerror(errno.ENODEV)}")
        if not self._ours(dev, network.network_id) or dev.kind != "vxlan":
            raise ForeignLinkError(f"link {name} is not pynetdrv's vxlan of network {network.network_id[:12]}")
        return dev

    async def _apply(self, network: VxlanNetwork, make: Callable[[Actual], Plan]) -> int:
        dev = await self._own_device(network)
        actual = (await self._entries(dev.index, network.ifname)).get(dev.index, Actual())
        changes = make(actual)  # raises before any change on bad or conflicting input
        if changes:
            log.debug("vxlan %s: %s", network.ifname, changes)
            await _batch(await self._rtnl.socket(), _requests(dev.index, network.ifname, changes))
        return len(changes)

    async def sync(self, network: VxlanNetwork, wanted_endpoints: Iterable[RemoteEndpoint],
                   wanted_hosts: Iterable[str]) -> int:
        """Make our entries on the network's device exactly those of these
        remote endpoints and peer hosts (VTEP IPs): add what is missing,
        remove what is stale, leave others' entries alone.  Returns the
        number of changes sent (0: already in sync).  Bad or conflicting
        input is refused before any change; if the kernel refuses one change
        of the batch, the others still apply, the error names the first
        refused one, and the next sync starts from what the kernel holds."""
        wanted = wanted_entries(wanted_endpoints, wanted_hosts)
        return await self._apply(network, lambda actual: plan(wanted, actual, network.ifname))

    async def fast_path(self, network: VxlanNetwork, local: Sequence[LocalPort], remote_ips: Iterable[str]) -> int:
        """The redirects past the bridge (``fastpath``) between these local containers and these
        remote addresses; the number of filters added or removed."""
        return await self._fast.sync(network.network_id, network.ifname, local, remote_ips)

    async def ensure_remote_endpoint(self, network: VxlanNetwork, endpoint: RemoteEndpoint) -> int:
        wanted = wanted_entries([endpoint], [])
        return await self._apply(network, lambda actual: plan(wanted, actual, network.ifname, scope=wanted))

    async def remove_remote_endpoint(self, network: VxlanNetwork, endpoint: RemoteEndpoint) -> int:
        gone = wanted_entries([endpoint], [])
        return await self._apply(network, lambda actual: removal(gone, actual))

    async def ensure_peer_host(self, network: VxlanNetwork, vtep: str) -> int:
        wanted = wanted_entries([], [vtep])
        return await self._apply(network, lambda actual: plan(wanted, actual, network.ifname, scope=wanted))

    async def remove_peer_host(self, network: VxlanNetwork, vtep: str) -> int:
        gone = wanted_entries([], [vtep])
        return await self._apply(network, lambda actual: removal(gone, actual))


__all__ = [
    "DEFAULT_PORT", "NEIGH_PROTOCOL", "RemoteEndpoint", "VxlanDataplane", "VxlanDeviceState", "VxlanNetwork",
    "Wanted", "vxlan_alias", "vxlan_device_name",
]
