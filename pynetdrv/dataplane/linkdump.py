"""Link reads (a dump, or one link) that decode only what ownership,
ensure_* and reconcile need.

pyroute2 decodes every attribute of every RTM_NEWLINK (stats, AF_SPEC, ~40
bridge-port attributes...): ~1.2 ms of CPU per link of ours, which made the
one dump of a restart over 1,000 endpoints (2,000 links) cost seconds.  Here
pyroute2 still owns the socket and the request; only the decode of the dump's
RTM_NEWLINK messages is replaced (pyroute2's per-request ``parser`` hook), by
a walk over the attributes that keeps ten fields.  Everything else (NLMSG_DONE,
errors) goes to pyroute2's own parser.  tests/netns checks the result against
pyroute2's full decode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.nlsocket import NetlinkRequest
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 10, 18, 20
IFLA_INFO_KIND, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 4, 5
IFLA_BRPORT_MODE = 4
RTEXT_FILTER_SKIP_STATS = 1 << 3
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
NLMSG_HDR, IFINFOMSG = struct.Struct("IHHII"), struct.Struct("BxHiII")


@dataclass(frozen=True, slots=True)
class DumpedLink:
    index: int
    flags: int
    ifname: str | None
    alias: str | None
    address: str | None
    mtu: int | None
    master: int | None
    kind: str | None
    slave_kind: str | None
    #: IFLA_BRPORT_MODE of a bridge port (1: hairpin on).
    brport_mode: int | None


def _attrs(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """type -> (payload start, payload end) of the attributes in data[start:end]."""
    found = {}
    while start + 4 <= end:
        length, kind = struct.unpack_from("HH", data, start)
        if length < 4:
            break
        found[kind & NLA_TYPE_MASK] = (start + 4, start + length)
        start += (length + 3) & ~3
    return found


def _str(data: bytes, span: tuple[int, int] | None) -> str | None:
    if span is None:
        return None
    return data[span[0]:span[1]].split(b"\0", 1)[0].decode(errors="replace")


def _u32(data: bytes, span: tuple[int, int] | None) -> int | None:
    return None if span is None else int(struct.unpack_from("I", data, span[0])[0])


def decode_link(data: bytes, offset: int, length: int) -> DumpedLink:
    """One RTM_NEWLINK message at data[offset:offset + length]."""
    _, _, index, flags, _ = IFINFOMSG.unpack_from(data, offset + NLMSG_HDR.size)
    attrs = _attrs(data, offset + NLMSG_HDR.size + IFINFOMSG.size, offset + length)
    kind = slave_kind = None
    mode = None
    if IFLA_LINKINFO in attrs:
        info = _attrs(data, *attrs[IFLA_LINKINFO])
        kind, slave_kind = _str(data, info.get(IFLA_INFO_KIND)), _str(data, info.get(IFLA_INFO_SLAVE_KIND))
        if IFLA_INFO_SLAVE_DATA in info:
            port = _attrs(data, *info[IFLA_INFO_SLAVE_DATA]).get(IFLA_BRPORT_MODE)
            mode = data[port[0]] if port is not None and port[1] > port[0] else None
    addr = attrs.get(IFLA_ADDRESS)
    return DumpedLink(
        index=index, flags=flags, ifname=_str(data, attrs.get(IFLA_IFNAME)),
        alias=_str(data, attrs.get(IFLA_IFALIAS)) or None,
        address=":".join(f"{b:02x}" for b in data[addr[0]:addr[1]]) if addr else None,
        mtu=_u32(data, attrs.get(IFLA_MTU)), master=_u32(data, attrs.get(IFLA_MASTER)),
        kind=kind, slave_kind=slave_kind, brport_mode=mode,
    )


def _parser(ipr: AsyncIPRoute) -> Any:
    def parse(data: bytes, offset: int, length: int) -> Any:
        _, kind, flags, seq, _ = NLMSG_HDR.unpack_from(data, offset)
        if kind != RTM_NEWLINK:  # NLMSG_DONE, NLMSG_ERROR: pyroute2's own
            return ipr.marshal.parse_one_message(kind, flags, seq, data, offset, length)
        return {"header": {"type": kind, "flags": flags, "sequence_number": seq, "error": None},
                "link": decode_link(data, offset, length)}

    return parse


async def dump_links(ipr: AsyncIPRoute) -> list[DumpedLink]:
    """All links of ``ipr``'s namespace; raises NetlinkError."""
    request = NetlinkRequest(ipr, ifinfmsg(), msg_type=RTM_GETLINK, msg_flags=NLM_F_REQUEST | NLM_F_DUMP,
                             parser=_parser(ipr))
    await request.send()
    return [msg["link"] async for msg in request.response()]


async def get_link(ipr: AsyncIPRoute, name: str) -> DumpedLink:
    """The link called ``name``; raises NetlinkError (ENODEV: none).  The
    kernel looks it up by IFLA_IFNAME, and leaves out the statistics."""
    msg = ifinfmsg()
    msg["attrs"] = [["IFLA_IFNAME", name], ["IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS]]
    request = NetlinkRequest(ipr, msg, msg_type=RTM_GETLINK, msg_flags=NLM_F_REQUEST, parser=_parser(ipr))
    await request.send()
    links: list[DumpedLink] = [m["link"] async for m in request.response()]
    if len(links) != 1:
        raise AssertionError(f"link get {name}: {len(links)} answers")
    return links[0]
