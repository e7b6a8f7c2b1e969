"""Checks of the state file against itself: records that refer to nothing,
addresses outside their pool, addresses held twice, allocations nothing uses
and endpoints whose address was never allocated."""

from __future__ import annotations

from collections import defaultdict

import netaddr

from pynetdrv.check.context import CheckContext, plain_ip, short
from pynetdrv.check.model import Finding
from pynetdrv.store.base import NetworkRecord, PoolRecord


async def check_records(ctx: CheckContext) -> list[Finding]:
    """Endpoints of unknown networks, endpoint addresses outside their
    network's pools, allocations outside their pool."""
    found: list[Finding] = []
    networks = ctx.networks()
    for ep in ctx.state.endpoints:
        net = networks.get(ep.network_id)
        if net is None:
            found.append(Finding("orphan", f"endpoint {short(ep.endpoint_id)}",
                                 f"its network {short(ep.network_id)} is not in the state"))
            continue
        for addr in (ep.address, ep.address_v6):
            ip = plain_ip(addr)
            if ip is not None and net.pools and not any(ip in netaddr.IPNetwork(p) for p in net.pools):
                found.append(Finding("mismatch", f"endpoint {short(ep.endpoint_id)}",
                                     f"address {addr} is outside the pools of network {short(net.network_id)} "
                                     f"({', '.join(net.pools)})"))
    for pool in ctx.state.pools:
        cidr = netaddr.IPNetwork(pool.cidr)
        for a in ctx.state.allocations.get(pool.pool_id, ()):
            if netaddr.IPAddress(a.address) not in cidr:
                found.append(Finding("mismatch", f"allocation {a.address}", f"outside its pool {pool.cidr}"))
    return found


async def check_duplicates(ctx: CheckContext) -> list[Finding]:
    """No address twice on one network: among its endpoints and gateways.
    Repairable when all holders but one are endpoints Docker does not know
    (--repair forgets those)."""
    found: list[Finding] = []
    orphans = ctx.docker_orphans()
    holders: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for net in ctx.state.networks:
        for gw in net.gateways:
            holders[net.network_id][str(netaddr.IPNetwork(gw).ip)].append(("the gateway", ""))
    for ep in ctx.state.endpoints:
        for addr in (ep.address, ep.address_v6):
            ip = plain_ip(addr)
            if ip is not None:
                holders[ep.network_id][str(ip)].append((f"endpoint {short(ep.endpoint_id)}", ep.endpoint_id))
    for network_id, by_ip in holders.items():
        for ip, who in sorted(by_ip.items()):
            if len(who) > 1:
                stays = [w for w, eid in who if eid not in orphans]
                found.append(Finding("duplicate", f"address {ip}",
                                     f"held by {' and '.join(w for w, _ in who)} on network {short(network_id)}",
                                     len(stays) <= 1))
    return found


async def check_allocations(ctx: CheckContext) -> list[Finding]:
    """Every endpoint address in a pynetdrv pool is allocated, and every
    allocation of a pool of a pynetdrv network is used by an endpoint, the
    gateway or (with Docker's view) an --aux-address."""
    found: list[Finding] = []
    allocated = {(p, a.address): a for p, allocs in ctx.state.allocations.items() for a in allocs}
    orphans = ctx.docker_orphans()
    for ep in ctx.state.endpoints:
        for addr in (ep.address, ep.address_v6):
            ip = plain_ip(addr)
            pool = ctx.pool_of(ip) if ip is not None else None
            if pool is None:
                continue  # Docker's own IPAM: not ours to account for
            alloc = allocated.get((pool.pool_id, str(ip)))
            if alloc is None:
                # Re-reserving is safe only if Docker confirms the endpoint.
                known = ctx.docker is not None and any(
                    de.endpoint_id == ep.endpoint_id for dn in ctx.docker.networks for de in dn.endpoints)
                # An endpoint Docker does not know is forgotten by --repair instead.
                found.append(Finding("missing", f"allocation {ip}",
                                     f"endpoint {short(ep.endpoint_id)} uses it but pool {pool.cidr} has it free "
                                     "(it could be handed out again)",
                                     known or ep.endpoint_id in orphans,
                                     ("reserve", pool.pool_id, str(ip)) if known else ()))
            elif alloc.kind == "gateway":
                found.append(
                    Finding(
                        "duplicate",
                        f"address {ip}",
                        f"endpoint {short(ep.endpoint_id)} uses the gateway allocation of pool {pool.cidr}",
                        ep.endpoint_id in orphans,
                    )
                )
    for pool in ctx.state.pools:
        nets = [n for n in ctx.state.networks if _pool_in(pool, n)]
        if nets:
            found += _network_pool(ctx, pool, nets[0])
        else:
            found += _foreign_pool(ctx, pool)
    return found


def _pool_in(pool: PoolRecord, net: NetworkRecord) -> bool:
    return any(netaddr.IPNetwork(p) == netaddr.IPNetwork(pool.cidr) for p in net.pools)


def _network_pool(ctx: CheckContext, pool: PoolRecord, net: NetworkRecord) -> list[Finding]:
    found: list[Finding] = []
    cidr = netaddr.IPNetwork(pool.cidr)
    used = {str(plain_ip(a)) for e in ctx.state.endpoints if e.network_id == net.network_id
            for a in (e.address, e.address_v6) if plain_ip(a) is not None}
    gateways = {str(netaddr.IPNetwork(g).ip) for g in net.gateways if netaddr.IPNetwork(g).ip in cidr}
    allocs = {a.address: a for a in ctx.state.allocations.get(pool.pool_id, ())}
    aux = _docker_aux(ctx, net.network_id)
    for gw in sorted(gateways - set(allocs)):
        found.append(Finding("missing", f"allocation {gw}",
                             f"gateway of network {short(net.network_id)} is free in pool {pool.cidr} "
                             "(it could be handed to a container)"))
    unverified = []
    for a in allocs.values():
        if a.address in used or a.address in gateways:
            continue
        if a.kind == "gateway":
            found.append(Finding("leak", f"allocation {a.address}",
                                 f"gateway allocation in pool {pool.cidr} that network {short(net.network_id)} "
                                 "does not use"))
        elif a.kind == "dynamic" or (aux is not None and a.address not in aux):
            # Releasing is safe only once Docker's view shows no holder.
            found.append(Finding("leak", f"allocation {a.address}",
                                 f"{a.kind} allocation in pool {pool.cidr} held by no endpoint"
                                 f"{'' if aux is None else ' and no --aux-address'}",
                                 aux is not None, ("release", pool.pool_id, a.address) if aux is not None else ()))
        elif aux is None:
            unverified.append(a.address)
    if unverified:
        ctx.notes.append(f"pool {pool.cidr}: static allocation(s) {', '.join(unverified)} held by no endpoint; "
                         "--aux-address or leak, Docker's view is needed to tell")
    return found


def _docker_aux(ctx: CheckContext, network_id: str) -> set[str] | None:
    if ctx.docker is None:
        return None
    for dn in ctx.docker.networks:
        if dn.network_id == network_id:
            return set(dn.aux_addresses)
    return set()


def _foreign_pool(ctx: CheckContext, pool: PoolRecord) -> list[Finding]:
    """A pool of no pynetdrv network: an IPAM-only network (another network
    driver with --ipam-driver pynetdrv), or a leaked pool."""
    allocs = ctx.state.allocations.get(pool.pool_id, ())
    if ctx.docker is None:
        ctx.notes.append(f"pool {pool.cidr}: no pynetdrv network uses it (IPAM-only network or leak; "
                         "Docker's view is needed to tell)")
        return []
    users = [dn for dn in ctx.docker.networks if ctx.is_ours(dn.ipam_driver)
             and any(netaddr.IPNetwork(s) == netaddr.IPNetwork(pool.cidr) for s in dn.subnets)]
    if not users:
        return [Finding("leak", f"pool {pool.cidr}",
                        f"no Docker network uses it ({len(allocs)} allocation(s) held)", True,
                        ("delete_pool", pool.pool_id))]
    if any(ctx.is_ours(dn.driver) for dn in users):
        return []  # our network unknown to the state: reported by the Docker checks
    held = {str(plain_ip(a)) for dn in users for e in dn.endpoints for a in (e.ipv4, e.ipv6) if plain_ip(a)}
    held |= {a for dn in users for a in dn.aux_addresses}
    return [
        Finding("leak", f"allocation {a.address}",
                f"{a.kind} allocation in pool {pool.cidr} (network {users[0].name}) held by no container",
                True, ("release", pool.pool_id, a.address))
        for a in allocs if a.kind != "gateway" and a.address not in held
    ]
