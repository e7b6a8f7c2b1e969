"""The cluster as etcd holds it, read once for ``pynetdrv status``: the hosts (alive = their
lease-bound record is there), the cluster networks (pool, VNI, users) and, per address, who holds it.

``read_inventory`` does the reads (a handful of prefix reads, no watch); ``Inventory`` and its
methods are pure, so the rendering is tested over plain records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pynetdrv.cluster.kv import KV, Snapshot
from pynetdrv.ipam.records import Allocation, PoolRecord
from pynetdrv.registry.view import EndpointEntry, HostEntry, RegistryView
from pynetdrv.store.etcd_keys import Keys


class Reader(Protocol):
    """The part of ``cluster.etcd.EtcdClient`` read here (tests give ``tests/fakes/etcd``)."""

    async def get(self, key: bytes) -> KV | None: ...

    async def get_prefix(self, prefix: bytes) -> Snapshot: ...


@dataclass(frozen=True)
class ClusterNetwork:
    pool: PoolRecord
    vni: int | None
    #: host -> how many of its Docker networks use the pool (``pool-users``).
    users: dict[str, int]
    allocations: tuple[Allocation, ...] = ()


@dataclass(frozen=True)
class Holder:
    """Who holds one address of a cluster network."""

    address: str
    #: "endpoint", "gateway" or "reserved" (allocated, no endpoint in the registry).
    kind: str
    #: The host (its advertise address) of the endpoint, or the allocation's owner.
    host: str
    endpoint_id: str = ""


@dataclass
class Inventory:
    view: RegistryView
    networks: list[ClusterNetwork] = field(default_factory=list)

    def host_names(self) -> list[str]:
        """Every host the cluster knows: registered (alive) or still counted as a pool user."""
        known = set(self.view.hosts)
        for net in self.networks:
            known |= set(net.users)
        return sorted(known)

    def alive(self, host: str) -> bool:
        return host in self.view.hosts

    def endpoints_of(self, host: str) -> list[tuple[str, EndpointEntry]]:
        return sorted((eid, e) for (h, eid), e in self.view.endpoints.items() if h == host)

    def networks_of(self, host: str) -> list[str]:
        entry = self.view.hosts.get(host)
        return sorted(set(entry.networks if entry else ()) | {n.pool.pool_id for n in self.networks
                                                              if host in n.users})

    def holders(self, net: ClusterNetwork) -> list[Holder]:
        # by address alone: an endpoint's record names its cluster network by the FIRST pool (IPv4 of a
        # dual-stack network), and addresses are unique in the cluster
        by_ip = {ip: (h, eid) for (h, eid), e in self.view.endpoints.items() for ip in e.ips}
        out = []
        for a in net.allocations:
            ip = a.address.split("/")[0]
            if ip in by_ip:
                out.append(Holder(ip, "endpoint", by_ip[ip][0], by_ip[ip][1]))
            elif a.kind == "gateway":
                out.append(Holder(ip, "gateway", "every host"))
            else:
                out.append(Holder(ip, "reserved", a.owner))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": [{"host": h, "alive": self.alive(h), "vtep": (self.view.hosts[h].vtep if self.alive(h) else None),
                       "networks": self.networks_of(h), "endpoints": len(self.endpoints_of(h))}
                      for h in self.host_names()],
            "networks": [{"network": n.pool.pool_id, "subnet": n.pool.cidr, "vni": n.vni,
                          "hosts": sorted(n.users),
                          "addresses": [vars(h) for h in self.holders(n)]} for n in self.networks],
        }


async def read_inventory(client: Reader, keys: Keys) -> Inventory:
    """One read of the registry and the pools; raises EtcdError (naming etcd) if it does not answer."""
    view = RegistryView(keys.registry())
    view.replace(await client.get_prefix(keys.registry()))
    networks = []
    for kv in sorted((await client.get_prefix(keys.pools())).kvs, key=lambda kv: kv.key):
        d = json.loads(kv.value)
        pool = PoolRecord(**d)
        vni = await client.get(keys.vni_of(pool.pool_id))
        users = await client.get(keys.pool_users(pool.pool_id))
        allocs = _allocations(pool, (await client.get_prefix(keys.allocs(pool.pool_id))).kvs)
        networks.append(ClusterNetwork(pool, int(vni.value) if vni else None,
                                       {str(k): int(v) for k, v in json.loads(users.value).items()} if users else {},
                                       allocs))
    return Inventory(view, networks)


def _allocations(pool: PoolRecord, kvs: Iterable[KV]) -> tuple[Allocation, ...]:
    import netaddr

    from pynetdrv.store.etcd_keys import addr_of

    version = netaddr.IPNetwork(pool.cidr).version
    out = []
    for kv in kvs:
        d = json.loads(kv.value)
        out.append(Allocation(str(netaddr.IPAddress(addr_of(kv.key), version)), d["kind"], d.get("owner", "")))
    return tuple(out)


def render_inventory(inv: Inventory) -> list[str]:
    """The "cluster" section of ``pynetdrv status``."""
    lines = ["CLUSTER HOST                  ALIVE   ENDPOINTS  NETWORKS"]
    for h in inv.host_names():
        lines.append(f"{h:<29} {'yes' if inv.alive(h) else 'NO':<7} {len(inv.endpoints_of(h)):<10} "
                     f"{', '.join(inv.networks_of(h)) or '-'}")
    lines += ["", "CLUSTER NETWORK               SUBNET                VNI    HOSTS"]
    for n in inv.networks:
        lines.append(f"{n.pool.pool_id:<29} {n.pool.cidr:<21} {n.vni if n.vni is not None else '-':<6} "
                     f"{', '.join(sorted(n.users)) or '-'}")
    lines += ["", "ADDRESS                       NETWORK                       HELD BY"]
    for n in inv.networks:
        for holder in inv.holders(n):
            who = {"endpoint": f"{holder.host} (endpoint {holder.endpoint_id[:12]})",
                   "gateway": "gateway (every host)",
                   "reserved": f"reserved by {holder.host or '?'} (no endpoint)"}[holder.kind]
            lines.append(f"{holder.address:<29} {n.pool.pool_id:<29} {who}")
    return lines


__all__ = ["ClusterNetwork", "Holder", "HostEntry", "Inventory", "read_inventory", "render_inventory"]
