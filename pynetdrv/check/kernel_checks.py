"""Checks of the kernel against the state: each network's bridge (ours, up,
gateway addresses, MTU), each endpoint's host veth (ours, up, on the right
bridge, MTU), and no link with this instance's alias that the state does not
know.  What ``check --repair`` can fix is marked repairable; it is exactly
what the start-up reconcile fixes (see ``repair``)."""

from __future__ import annotations

import ipaddress
import re

from pynetdrv.check.context import CheckContext, short
from pynetdrv.check.model import Finding, KernelLink
from pynetdrv.dataplane.base import owner_alias, parse_owner_alias
from pynetdrv.driver.external import firewall_state
from pynetdrv.firewall.base import FirewallError
from pynetdrv.store.base import NetworkRecord


async def check_firewall(ctx: CheckContext) -> list[Finding]:
    """This instance's iptables rules against what the state needs (the same
    render the daemon applies): a flushed chain, a lost jump, a stray rule."""
    if ctx.firewall is None:
        return []
    state = firewall_state(list(ctx.state.networks), list(ctx.state.endpoints))
    try:
        drift = await ctx.firewall.drift(state)
    except FirewallError as e:
        ctx.notes.append(f"firewall not compared: {e}")
        return []
    return [Finding("mismatch", "firewall", line, True) for line in drift]


async def check_bridges(ctx: CheckContext) -> list[Finding]:
    if ctx.links is None:
        return []
    found: list[Finding] = []
    links = ctx.links_by_name()
    for net in ctx.state.networks:
        subject = f"bridge {net.bridge}"
        link = links.get(net.bridge)
        if link is None:
            found.append(Finding("missing", subject, f"network {short(net.network_id)} has no bridge", True))
            continue
        alias = owner_alias("bridge", net.network_id, ctx.instance)
        if link.alias != alias or link.kind != "bridge":
            found.append(Finding("mismatch", subject,
                                 f"a {link.kind or 'link'} with alias {link.alias!r}, not {alias!r}: "
                                 "not pynetdrv's, so it is left alone"))
            continue
        found += _bridge_settings(net, link)
    return found


def _bridge_settings(net: NetworkRecord, link: KernelLink) -> list[Finding]:
    found: list[Finding] = []
    subject = f"bridge {net.bridge}"
    if not link.up:
        found.append(Finding("mismatch", subject, "is down", True))
    if net.mtu is not None and link.mtu != net.mtu:
        found.append(Finding("mismatch", subject, f"MTU {link.mtu}, the network has {net.mtu}", True))
    # Interfaces, not networks: netaddr.IPNetwork("10.0.0.1/24") equals "10.0.0.9/24".
    want = {ipaddress.ip_interface(g) for g in net.gateways}
    have = {ipaddress.ip_interface(a) for a in link.addresses}
    for gw in sorted(want - have, key=str):
        found.append(Finding("missing", f"address {gw}", f"gateway of network {short(net.network_id)} "
                                                          f"is not on {net.bridge}", True))
    for extra in sorted(have - want, key=str):
        found.append(Finding("mismatch", subject, f"carries {extra}, which is no gateway of the network", True))
    return found


async def check_veths(ctx: CheckContext) -> list[Finding]:
    if ctx.links is None:
        return []
    found: list[Finding] = []
    links = ctx.links_by_name()
    networks = ctx.networks()
    for ep in ctx.state.endpoints:
        net = networks.get(ep.network_id)
        if net is None:
            continue  # reported by check_records
        subject = f"veth {ep.host_ifname}"
        link = links.get(ep.host_ifname)
        if link is None:
            why = ("its container had joined, so its namespace is gone: a dead endpoint "
                   "(repair forgets it)" if ep.sandbox_key else "not joined yet (repair recreates it)")
            found.append(Finding("missing", subject, f"endpoint {short(ep.endpoint_id)}: {why}", True))
            continue
        alias = owner_alias("veth", ep.endpoint_id, ctx.instance)
        if link.alias != alias:
            found.append(Finding("mismatch", subject, f"alias {link.alias!r}, not {alias!r}: not pynetdrv's"))
            continue
        if link.master != net.bridge:
            found.append(Finding("mismatch", subject,
                                 f"attached to {link.master or 'no bridge'}, should be on {net.bridge}", True))
        if not link.up:
            found.append(Finding("mismatch", subject, "is down", True))
        if net.mtu is not None and link.mtu != net.mtu:
            found.append(Finding("mismatch", subject, f"MTU {link.mtu}, the network has {net.mtu}", True))
    return found


#: pynetdrv's veth names (driver/naming.py): pnve-/pnvc- and 10 hex of the endpoint ID.
_VETH_NAME = re.compile(r"pnv[ec]-[0-9a-f]{10}")


async def check_unknown_links(ctx: CheckContext) -> list[Finding]:
    """Links with this instance's alias that the state does not know: a crash
    between a kernel step and its store write, or a network deleted while
    pynetdrv was down.  Veths named like pynetdrv's that carry no alias at
    all get a note: the kernel cannot set the alias when it creates the pair,
    so a crash between the two leaves a pair nobody has marked."""
    if ctx.links is None:
        return []
    found: list[Finding] = []
    networks, endpoints = ctx.networks(), ctx.endpoints()
    known_names = {n for e in ctx.state.endpoints for n in (e.host_ifname, e.peer_ifname)}
    for link in ctx.links:
        if (not link.alias and link.kind == "veth" and _VETH_NAME.fullmatch(link.name)
                and link.name not in known_names):
            # A note, not a finding: every pynetdrv instance on the host names
            # its veths this way, so nothing proves this one is ours.
            ctx.notes.append(f"link {link.name} is named like a pynetdrv veth but carries no owner alias "
                             "(a crash between creating the pair and marking it?); it may belong to any "
                             "pynetdrv instance, so --repair leaves it: remove it by hand if it is not in use")
            continue
        parsed = parse_owner_alias(link.alias, ctx.instance)
        if parsed is None:
            continue
        kind, object_id = parsed
        known = networks if kind == "bridge" else endpoints
        if object_id not in known:
            what = "network" if kind == "bridge" else "endpoint"
            found.append(Finding("orphan", f"link {link.name}",
                                 f"{kind} of {what} {short(object_id)}, which the state does not know", True))
        elif kind == "bridge" and networks[object_id].bridge != link.name:
            found.append(Finding("orphan", f"link {link.name}",
                                 f"bridge alias of network {short(object_id)}, whose bridge is "
                                 f"{networks[object_id].bridge}"))
    return found
