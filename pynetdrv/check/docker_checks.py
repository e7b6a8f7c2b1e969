"""Checks of Docker's view against the state: the same networks, the same
endpoints with the same addresses, no address twice among containers, and
the pools and addresses of IPAM-only networks accounted for."""

from __future__ import annotations

from collections import defaultdict

import netaddr

from pynetdrv.check.context import CheckContext, plain_ip, short
from pynetdrv.check.model import Finding


async def check_docker_networks(ctx: CheckContext) -> list[Finding]:
    if ctx.docker is None:
        return []
    found: list[Finding] = []
    ours = {n.network_id: n for n in ctx.docker.networks if ctx.is_ours(n.driver)}
    stored = ctx.networks()
    for nid, dn in ours.items():
        if nid not in stored:
            found.append(Finding("missing", f"network {short(nid)}",
                                 f"Docker has network {dn.name!r} on driver {dn.driver}, the state does not"))
    for nid, net in stored.items():
        if nid not in ours:
            found.append(Finding("orphan", f"network {short(nid)}",
                                 f"in the state (bridge {net.bridge}), unknown to Docker"))
    pools = {netaddr.IPNetwork(p.cidr) for p in ctx.state.pools}
    for dn in ctx.docker.networks:
        if not ctx.is_ours(dn.ipam_driver):
            continue
        for subnet in dn.subnets:
            if netaddr.IPNetwork(subnet) not in pools:
                found.append(
                    Finding(
                        "missing",
                        f"pool {subnet}",
                        f"Docker network {dn.name!r} uses it with IPAM {dn.ipam_driver}, the state has no such pool",
                    )
                )
    return found


async def check_docker_endpoints(ctx: CheckContext) -> list[Finding]:
    if ctx.docker is None:
        return []
    found: list[Finding] = []
    stored = ctx.endpoints()
    networks = ctx.networks()
    for dn in ctx.docker.networks:
        found += _duplicates(dn.name, [(e.container_name or short(e.container_id), a)
                                       for e in dn.endpoints for a in (e.ipv4, e.ipv6)])
        if ctx.is_ours(dn.driver) and dn.network_id in networks:
            seen = set()
            for de in dn.endpoints:
                seen.add(de.endpoint_id)
                ep = stored.get(de.endpoint_id)
                who = f"container {de.container_name or short(de.container_id)}"
                if ep is None:
                    found.append(Finding("missing", f"endpoint {short(de.endpoint_id)}",
                                         f"Docker has it for {who} on {dn.name!r}, the state does not"))
                    continue
                if ep.network_id != dn.network_id:
                    found.append(Finding("mismatch", f"endpoint {short(de.endpoint_id)}",
                                         f"on network {short(ep.network_id)} in the state, {dn.name!r} in Docker"))
                for family, theirs, mine in (("IPv4", de.ipv4, ep.address), ("IPv6", de.ipv6, ep.address_v6)):
                    if plain_ip(theirs) != plain_ip(mine):
                        found.append(Finding("mismatch", f"endpoint {short(de.endpoint_id)}",
                                             f"{family} address {theirs or 'none'} in Docker ({who}), "
                                             f"{mine or 'none'} in the state"))
            for ep in ctx.state.endpoints:
                if ep.network_id == dn.network_id and ep.endpoint_id not in seen:
                    found.append(Finding("orphan", f"endpoint {short(ep.endpoint_id)}",
                                         f"in the state on {dn.name!r} (veth {ep.host_ifname}, "
                                         f"address {ep.address or ep.address_v6 or 'none'}), unknown to Docker",
                                         True, ("forget_endpoint", ep.endpoint_id)))
        elif ctx.is_ours(dn.ipam_driver) and not ctx.is_ours(dn.driver):
            found += _ipam_only_addresses(ctx, dn.name, [a for e in dn.endpoints for a in (e.ipv4, e.ipv6)])
    return found


def _duplicates(network: str, addresses: list[tuple[str, str]]) -> list[Finding]:
    holders: dict[str, list[str]] = defaultdict(list)
    for who, addr in addresses:
        ip = plain_ip(addr)
        if ip is not None:
            holders[str(ip)].append(who)
    return [Finding("duplicate", f"address {ip}", f"containers {', '.join(who)} on Docker network {network!r}")
            for ip, who in sorted(holders.items()) if len(who) > 1]


def _ipam_only_addresses(ctx: CheckContext, network: str, addresses: list[str]) -> list[Finding]:
    found = []
    allocated = {(p, a.address) for p, allocs in ctx.state.allocations.items() for a in allocs}
    for addr in addresses:
        ip = plain_ip(addr)
        pool = ctx.pool_of(ip) if ip is not None else None
        if pool is not None and (pool.pool_id, str(ip)) not in allocated:
            found.append(Finding("missing", f"allocation {ip}",
                                 f"a container on {network!r} uses it but pool {pool.cidr} has it free"))
    return found
