"""The real Dataplane: links and addresses over rtnetlink with pyroute2
(the sockets, and which thread sends what, are in ``rtnl``).

Ownership rule (see ``base``): a link is ours only if its IFLA_IFALIAS is
exactly ``owner_alias(kind, id, instance)``.  Everything else is left alone;
where we would have to change a foreign link we raise ``ForeignLinkError``.
Kernel errors are matched on ``NetlinkError.code`` (errno), never on text.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .base import (
    DEFAULT_INSTANCE,
    BridgeSpec,
    DataplaneError,
    ForeignLinkError,
    OwnedLink,
    VethSpec,
    birth_mac,
    owner_alias,
    parse_owner_alias,
)
from .linkdump import DumpedLink as Link
from .linkdump import dump_links, get_link
from .rtnl import Msg, Rtnl, kernel_error, kernel_step, setlink
from .veth_pacing import BURST_WINDOW, VethPacing

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_SCOPE_UNIVERSE = 0
RT_TABLE_MAIN = 254
#: What an add with IFLA_MASTER returns when that index is no bridge any more:
#: gone (EINVAL), or reused by a link that takes no ports (EOPNOTSUPP).
STALE_MASTER_ERRNOS = (errno.EINVAL, errno.ENODEV, errno.EOPNOTSUPP)
IPV6_NOT_POOL_ROUTES = (
    ipaddress.IPv6Network("fe80::/64"),  # per-link link-local, on every link
    ipaddress.IPv6Network("ff00::/8"),  # multicast
)


def _alias(link: Link) -> str | None:
    return link.alias or None


def _kind(link: Link) -> str | None:
    return link.kind or None


def _hairpin(link: Link) -> bool:
    """A bridge port with hairpin mode on (from a link get or dump)."""
    return link.slave_kind == "bridge" and link.brport_mode == 1


def _foreign(name: str, what: str, object_id: str) -> ForeignLinkError:
    return ForeignLinkError(
        f"link {name} exists and was not created by pynetdrv for {what} {object_id[:12]}"
    )


def _addr_of(msg: Msg) -> Address:
    # IFA_LOCAL is the interface's own IPv4 address (IFA_ADDRESS would be
    # the peer on point-to-point links); IPv6 only has IFA_ADDRESS.
    ip = msg.get("local") or msg.get("address")
    return ipaddress.ip_interface(f"{ip}/{msg['prefixlen']}")


class NetlinkDataplane:
    """``Dataplane`` on the kernel, in the host or a named network namespace."""

    def __init__(
        self,
        netns: str | None = None,
        instance: str = DEFAULT_INSTANCE,
        socket_factory: Callable[..., AsyncIPRoute] = AsyncIPRoute,
        slow_socket_factory: Callable[..., IPRoute] = IPRoute,
        burst_window: float = BURST_WINDOW,
    ) -> None:
        """The factories open the rtnetlink sockets (see ``rtnl.Rtnl``);
        ``burst_window``: see ``veth_pacing``."""
        self._rtnl = Rtnl(netns, socket_factory, slow_socket_factory)
        #: Our bridges' indexes by name, filled where ownership is verified
        #: (ensure_bridge, or a read when enslaving), so a new veth is
        #: created already enslaved without reading its bridge first.
        self._bridges: dict[str, int] = {}
        # Scopes ownership: another pynetdrv instance's links are foreign.
        self._instance = instance
        #: How ensure_veth orders and places its requests (see veth_pacing).
        self._pacing = VethPacing(burst_window)

    async def _ipr(self) -> AsyncIPRoute:
        """The event loop's socket (tests read its counters)."""
        return await self._rtnl.socket()

    async def close(self) -> None:
        await self._rtnl.close()

    # -- reading -----------------------------------------------------------

    async def _get(self, name: str) -> Link | None:
        """The link called ``name``, or None if there is none."""
        ipr = await self._ipr()
        try:
            # The light decode: pyroute2's full one cost ~1 ms of CPU per get.
            return await get_link(ipr, name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise kernel_error("read link", name, exc) from exc

    async def _must_get(self, name: str, step: str) -> Link:
        link = await self._get(name)
        if link is None:
            raise DataplaneError(f"{step} {name}: {os.strerror(errno.ENODEV)}")
        return link

    async def owned_links(self) -> list[OwnedLink]:
        ipr = await self._ipr()
        with kernel_step("dump", "links"):
            links = await dump_links(ipr)  # the light decode: ~10 fields per link
        names = {link.index: link.ifname for link in links}
        owned = []
        for link in links:
            parsed = parse_owner_alias(link.alias, self._instance)
            if parsed is None and link.kind in ("bridge", "veth") and self._born_ours(link.ifname, link.address):
                # Created, then the daemon died before the alias: no object
                # id, so reconcile sees it as unknown and removes it.
                parsed = (link.kind, "")  # type: ignore[assignment]
            if parsed is not None and link.ifname:
                owned.append(OwnedLink(
                    link.ifname, parsed[0], parsed[1],
                    master=names.get(link.master) if link.master else None, up=bool(link.flags & IFF_UP),
                    mtu=link.mtu, hairpin=link.slave_kind == "bridge" and link.brport_mode == 1,
                ))
        self._pacing.dumped(o.name for o in owned if o.kind == "veth")
        return owned

    def _born_ours(self, name: str | None, address: str | None) -> bool:
        return bool(name) and str(address or "").lower() == birth_mac(self._instance, name or "")

    def _unmarked_ours(self, link: Link) -> bool:
        """No alias yet, but born ours (see base.birth_mac)."""
        return _alias(link) is None and self._born_ours(link.ifname, link.address)

    async def link_in_use(self, name: str) -> bool:
        link = await self._get(name)
        return link is not None and parse_owner_alias(_alias(link), self._instance) is None

    async def host_routes(self) -> list[str]:
        routes: list[str] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in await self._main_routes(family):
                if route["dst_len"] == 0:
                    continue  # default route: covers everything, blocks nothing
                net = ipaddress.ip_network(f"{route.get('dst')}/{route['dst_len']}", strict=False)
                if isinstance(net, ipaddress.IPv6Network) and any(
                    net.subnet_of(skip) for skip in IPV6_NOT_POOL_ROUTES
                ):
                    continue
                if str(net) not in routes:  # one per destination (e.g. two metrics)
                    routes.append(str(net))
        return routes

    async def _main_routes(self, family: int) -> list[Msg]:
        ipr = await self._ipr()
        with kernel_step("dump", "routes"):
            dump = await ipr.route("dump", family=family)
            return [r async for r in dump if r.get("table") == RT_TABLE_MAIN]

    # -- shared link steps -------------------------------------------------

    async def _set(self, link: Link, name: str, step: str, **attrs: Any) -> None:
        log.debug("%s %s: %s", step, name, attrs)
        ipr = await self._ipr()
        with kernel_step(step, name):
            await ipr.link("set", index=link.index, **attrs)

    async def _ensure_up(self, link: Link, name: str) -> None:
        if not link.flags & IFF_UP:
            await self._set(link, name, "bring up", state="up")

    async def _ensure_mtu(self, link: Link, name: str, mtu: int | None) -> None:
        if mtu is not None and link.mtu != mtu:
            await self._set(link, name, "set mtu", mtu=mtu)

    async def _delete(self, link: Link, name: str, step: str) -> None:
        log.debug("%s %s", step, name)
        index = link.index
        try:
            await self._rtnl.off_loop(lambda ipr: ipr.link("del", index=index))
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:  # already gone: that is what we wanted
                raise kernel_error(step, name, exc) from exc

    async def _remove_owned(self, name: str, alias: str, what: str) -> None:
        link = await self._get(name)
        if link is None:
            log.debug("%s %s already gone", what, name)
        elif _alias(link) != alias and not self._unmarked_ours(link):
            # Same name, not ours (or another object's): never delete it.
            log.warning("not removing link %s: it is not pynetdrv's %s", name, alias)
        else:
            await self._delete(link, name, f"delete {what}")

    # -- bridges -----------------------------------------------------------

    async def ensure_bridge(self, spec: BridgeSpec) -> None:
        link = await self._claim_bridge(spec)
        name = spec.name
        if (link.address or "").lower() != spec.mac.lower():
            await self._set(link, name, "set mac", address=spec.mac)
        await self._ensure_mtu(link, name, spec.mtu)
        await self._sync_addresses(link, spec)
        await self._ensure_up(link, name)

    async def _claim_bridge(self, spec: BridgeSpec) -> Link:
        """The bridge link, created if missing; refuses links not ours."""
        alias = owner_alias("bridge", spec.network_id, self._instance)
        self._bridges.pop(spec.name, None)  # until verified again below
        if await self._drop_unmarked(spec.name, await self._get(spec.name)) is None and await self._add_bridge(spec):
            # Alias right after creation: from now on the link is claimed.
            new = await self._must_get(spec.name, "read new bridge")
            await self._set(new, spec.name, "set alias", ifalias=alias)
            # The birth MAC gives way to the network's own (ensure_bridge).
        link = await self._must_get(spec.name, "read bridge")
        if _alias(link) != alias:
            raise _foreign(spec.name, "network", spec.network_id)
        if _kind(link) != "bridge":
            raise ForeignLinkError(f"link {spec.name} exists and is a {_kind(link)}, not a bridge")
        self._bridges[spec.name] = link.index
        return link

    async def _add_bridge(self, spec: BridgeSpec) -> bool:
        """Create the bridge; False if someone created the name first."""
        log.debug("create bridge %s", spec.name)
        ipr = await self._ipr()
        # MAC given at creation (a bridge otherwise takes its lowest port's
        # MAC, which changes as containers come and go): the birth mark
        # until the alias is set, then the network's own.
        attrs: dict[str, Any] = {"address": birth_mac(self._instance, spec.name)}
        if spec.mtu is not None:
            attrs["mtu"] = spec.mtu
        try:
            await ipr.link("add", ifname=spec.name, kind="bridge", **attrs)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False  # raced: the caller re-reads and checks the owner
            raise kernel_error("create bridge", spec.name, exc) from exc
        return True

    async def _sync_addresses(self, link: Link, spec: BridgeSpec) -> None:
        wanted = {ipaddress.ip_interface(a) for a in spec.addresses}
        current = await self._global_addresses(link, spec.name)
        # Remove stale ones first: deleting a primary IPv4 address also drops
        # its secondaries, and a wanted address added before that in the same
        # subnet would be such a secondary.  IPv6 also refuses the same IP
        # with a new prefix length until the old one is gone.
        for addr in sorted(current - wanted, key=str):
            await self._del_address(link, spec.name, addr)
        for addr in sorted(wanted - current, key=str):
            await self._add_address(link, spec.name, addr)

    async def _global_addresses(self, link: Link, name: str) -> set[Address]:
        ipr = await self._ipr()
        with kernel_step("dump addresses of", name):
            dump = await ipr.addr("dump", index=link.index)
            # Link-local (fe80::) and host-scope addresses are the kernel's.
            return {_addr_of(a) async for a in dump if a["scope"] == RT_SCOPE_UNIVERSE}

    async def _add_address(self, link: Link, name: str, addr: Address) -> None:
        log.debug("add address %s to %s", addr, name)
        ipr = await self._ipr()
        # No DAD for IPv6: the gateway must answer at once, and the address
        # is ours by allocation, so a duplicate check adds only delay.
        flags = IFA_F_NODAD if addr.version == 6 else 0
        ip, plen = str(addr.ip), addr.network.prefixlen
        try:
            await ipr.addr("add", index=link.index, address=ip, prefixlen=plen, flags=flags)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise kernel_error(f"add address {addr} to", name, exc) from exc

    async def _del_address(self, link: Link, name: str, addr: Address) -> None:
        log.debug("remove address %s from %s", addr, name)
        ipr = await self._ipr()
        ip, plen = str(addr.ip), addr.network.prefixlen
        try:
            await ipr.addr("del", index=link.index, address=ip, prefixlen=plen)
        except NetlinkError as exc:
            if exc.code != errno.EADDRNOTAVAIL:  # already gone
                raise kernel_error(f"remove address {addr} from", name, exc) from exc

    async def remove_bridge(self, name: str, network_id: str) -> None:
        self._bridges.pop(name, None)
        await self._remove_owned(name, owner_alias("bridge", network_id, self._instance), "bridge")

    # -- veth pairs --------------------------------------------------------

    async def ensure_veth(self, spec: VethSpec) -> None:
        with self._pacing.ensuring():
            await self._ensure_veth(spec)
        self._pacing.exists(spec.host_name)

    async def _ensure_veth(self, spec: VethSpec) -> None:
        # Requests: a healthy pair costs one get (Join, reconcile); a new
        # one an add that also enslaves and brings the host end up, and one
        # send carrying both aliases and hairpin mode (plus a get first if
        # the pair was known to exist).  If the add finds a name taken, the
        # careful path below decides, so a wrong guess costs only time.
        alias = owner_alias("veth", spec.endpoint_id, self._instance)
        if not self._pacing.likely_new(spec.host_name) and await self._repair_existing(spec, alias):
            return
        if await self._add_veth_attached(spec):
            try:
                await self._mark_new_veth(spec, alias)
            except BaseException:
                await self._undo_veth(spec.host_name)  # see _create_veth_stepwise
                raise
            return
        # A name is taken (a stale peer of ours, a foreign link, a race):
        # the careful path reads both names and decides.
        if not await self._repair_existing(spec, alias):
            await self._create_veth_stepwise(spec, alias)

    async def _repair_existing(self, spec: VethSpec, alias: str) -> bool:
        """If the host end exists (and is not a half-made leftover): refuse
        it unless it is this endpoint's, else put right what differs.  False
        if there is no such link."""
        host = await self._drop_unmarked(spec.host_name, await self._get(spec.host_name))
        if host is None:
            return False
        if _alias(host) != alias:
            raise _foreign(spec.host_name, "endpoint", spec.endpoint_id)
        await self._attach(host, spec)
        return True

    async def _add_veth_attached(self, spec: VethSpec) -> bool:
        """Create the pair already enslaved to the bridge and up, in one
        request; False if a name is taken.  A cached bridge index that has
        gone stale (bridge deleted and made again elsewhere) gets one retry
        with the bridge read afresh."""
        for fresh in (False, True):
            bridge = await self._bridge_index(spec.bridge, spec.host_name, fresh=fresh)
            try:
                await self._add_veth(spec, master=bridge, state="up")
                return True
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    return False
                if fresh or exc.code not in STALE_MASTER_ERRNOS:
                    raise kernel_error("create veth", spec.host_name, exc) from exc
                log.info("bridge %s: cached index %d is stale (%s), reading it again",
                         spec.bridge, bridge, os.strerror(exc.code))
                self._bridges.pop(spec.bridge, None)
        raise AssertionError("unreachable")

    async def _mark_new_veth(self, spec: VethSpec, alias: str) -> None:
        """Aliases on both ends (the kernel ignores one given at creation;
        both ends carry it so a peer left in this namespace is recognised as
        ours too) and hairpin mode on the host end, in one send.  By name:
        the pair was just created under these names."""
        host_linkinfo = {"attrs": [
            ["IFLA_INFO_SLAVE_KIND", "bridge"],
            # Hairpin: a container reaching its own published port through
            # the host is DNATed back out of the port the frame came in on.
            ["IFLA_INFO_SLAVE_DATA", {"attrs": [["IFLA_BRPORT_MODE", 1]]}],
        ]}
        await self._rtnl.batch([
            ("set alias and hairpin mode on", spec.host_name,
             setlink(spec.host_name, ["IFLA_IFALIAS", alias], ["IFLA_LINKINFO", host_linkinfo])),
            ("set alias", spec.peer_name, setlink(spec.peer_name, ["IFLA_IFALIAS", alias])),
        ])

    async def _bridge_index(self, bridge: str, host_name: str, fresh: bool = False) -> int:
        """Index of our bridge ``bridge``, from the cache unless ``fresh``."""
        if not fresh and bridge in self._bridges:
            return self._bridges[bridge]
        link = await self._must_get(bridge, f"enslave {host_name} to bridge")
        self._own_bridge(link, bridge, f"enslave {host_name} to {bridge}")
        return link.index

    def _own_bridge(self, link: Link, name: str, step: str) -> None:
        """Refuse to enslave to anything but one of our own bridges; cache
        its index (dropped by remove_bridge)."""
        parsed = parse_owner_alias(_alias(link), self._instance)
        if parsed is None or parsed[0] != "bridge" or _kind(link) != "bridge":
            self._bridges.pop(name, None)
            raise ForeignLinkError(f"{step}: link {name} is not a bridge created by pynetdrv")
        self._bridges[name] = link.index

    async def _drop_unmarked(self, name: str, link: Link | None) -> Link | None:
        """``link`` (as just read), or None once removed if it is a link of
        ours left half-made by a crash (born, never aliased), so the step that
        made it can start over."""
        if link is not None and self._unmarked_ours(link):
            log.info("removing %s: created by an earlier run that died before marking it", name)
            await self._delete(link, name, "delete unmarked leftover")
            return None
        return link

    async def _create_veth_stepwise(self, spec: VethSpec, alias: str) -> None:
        """The careful path: free the peer name if a stale peer of ours
        holds it, create, then alias and attach step by step."""
        await self._free_peer_name(spec, alias)
        with kernel_step("create veth", spec.host_name):
            await self._add_veth(spec)
        try:
            await self._configure_new_veth(spec, alias)
        except BaseException:
            # Also on cancellation: a half-configured pair must not outlive
            # this call (it would be unowned, or owned but not attached).
            await self._undo_veth(spec.host_name)
            raise

    async def _free_peer_name(self, spec: VethSpec, alias: str) -> None:
        peer = await self._get(spec.peer_name)
        if peer is None:
            return
        if _alias(peer) != alias:
            raise _foreign(spec.peer_name, "endpoint", spec.endpoint_id)
        # Our own leftover whose host end is gone (or elsewhere): recreate.
        await self._delete(peer, spec.peer_name, "delete stale veth")

    async def _add_veth(self, spec: VethSpec, **host_attrs: Any) -> None:
        """Create the pair; raises NetlinkError.  The host end is born with
        the birth MAC (see base.birth_mac)."""
        log.debug("create veth %s/%s %s", spec.host_name, spec.peer_name, host_attrs)
        mtu = {"mtu": spec.mtu} if spec.mtu is not None else {}
        # The peer's MTU must be in the peer dict: the outer one is host-only.
        peer = {"ifname": spec.peer_name, "address": spec.mac, **mtu}
        born = birth_mac(self._instance, spec.host_name)
        attrs = {"ifname": spec.host_name, "kind": "veth", "peer": peer, "address": born, **mtu, **host_attrs}
        if self._pacing.add_off_loop():
            # Other endpoints are being made, or wait to be (a burst of
            # container starts): the ~1 ms the kernel holds the sender goes
            # to the worker thread, so the loop keeps answering.
            await self._rtnl.off_loop(lambda ipr: ipr.link("add", **attrs))
        else:
            # One at a time, the thread hand-off (~0.2 ms here) would be
            # most of the cost, and there is nobody to keep waiting.
            await (await self._ipr()).link("add", **attrs)

    async def _configure_new_veth(self, spec: VethSpec, alias: str) -> None:
        for name in (spec.host_name, spec.peer_name):
            link = await self._must_get(name, "read new veth")
            await self._set(link, name, "set alias", ifalias=alias)
        await self._attach(await self._must_get(spec.host_name, "read new veth"), spec)

    async def _attach(self, host: Link, spec: VethSpec) -> None:
        """Host end (as just read): MTU, enslaved to the bridge, hairpin
        mode, up; writes only what differs.  The peer stays down: Docker
        moves it into the container and brings it up there."""
        name = spec.host_name
        await self._ensure_mtu(host, name, spec.mtu)
        master = host.master
        # The bridge is read only if the cache has no entry or disagrees.
        if self._bridges.get(spec.bridge) != master or master is None:
            bridge = await self._bridge_index(spec.bridge, name, fresh=True)
            if master != bridge:
                await self._set(host, f"{name} to {spec.bridge}", "enslave", master=bridge)
                master = None  # a new port starts with hairpin off
        if master is None or not _hairpin(host):
            # Hairpin: a container reaching its own published port through
            # the host is DNATed back out of the port the frame came in on.
            with kernel_step("set hairpin mode on", name):
                await (await self._ipr()).brport("set", index=host.index, mode=1)
        await self._ensure_up(host, name)

    async def _undo_veth(self, host_name: str) -> None:
        try:
            link = await self._get(host_name)
            if link is not None:
                await self._delete(link, host_name, "undo veth")
        except DataplaneError as exc:
            # Keep the original error; this one only goes to the log.
            log.warning("could not remove half-created veth %s: %s", host_name, exc)

    async def remove_veth(self, host_name: str, endpoint_id: str) -> None:
        # Deleting one end of a veth pair deletes the other one too.
        alias = owner_alias("veth", endpoint_id, self._instance)
        await self._remove_owned(host_name, alias, "veth")
        self._pacing.gone(host_name)
