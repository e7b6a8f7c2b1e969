"""Cluster mode's store: shared records (pools, allocations, VNIs) in etcd, this host's records in SQLite.

Docker network IDs differ per host, so a network record (bridge, options, gateways) stays local,
keyed by this host's Docker ID; what makes networks on several hosts ONE network is their pool:

- ``add_pool`` of a subnet some host already uses (same subnet and ip-range, both given with
  ``--subnet``) JOINS it: this host's use count in ``pool-users/<pool>`` goes up.  A subnet that
  overlaps another is refused naming the cluster network it overlaps.  Automatic pools never join.
- ``delete_pool`` (ReleasePool) lowers this host's count; the pool, its addresses and its VNI go
  when no host uses it any more, in one transaction compared with the users key.
- The gateway is one address for every host: a gateway request for the address a gateway already
  holds succeeds, and releasing a gateway keeps it (it goes with the pool).
- ``vni(pool)``: the cluster network's VXLAN VNI (1..4095), allocated once by compare-and-swap.

Every etcd call is bounded (EtcdClient's timeout) and fails with EtcdUnavailable naming etcd.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import netaddr

from pynetdrv.cluster.kv import Compare, Delete, Get, Put, absent, mod_revision_is
from pynetdrv.errors import Conflict, Unavailable
from pynetdrv.ipam.records import RESERVED, Allocation, AllocationKind, CursorUpdate, PoolRecord, PoolState, Reservation
from pynetdrv.store.base import EndpointRecord, NetworkRecord
from pynetdrv.store.etcd_keys import addr_hex
from pynetdrv.store.etcd_shared import EtcdSharedStore
from pynetdrv.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

MAX_VNI = 4095
#: Compare-and-swap rounds before a busy key is reported (each lost round: another host wrote it).
ROUNDS = 32


def _users(raw: bytes | None) -> dict[str, int]:
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}


def _json(d: dict[str, Any]) -> bytes:
    return json.dumps(d, sort_keys=True).encode()


class ClusterPools:
    """``PoolStore`` over etcd for one host of the cluster (``host``: its advertise address)."""

    def __init__(self, shared: EtcdSharedStore, host: str) -> None:
        self.shared = shared
        self.client = shared.client
        self.keys = shared.keys
        self.host = host

    # -- pools -------------------------------------------------------------------------------------
    async def add_pool(self, pool: PoolRecord) -> None:
        users_key = self.keys.pool_users(pool.pool_id)
        for _ in range(ROUNDS):
            existing = await self.shared.get_pool(pool.pool_id)
            if existing is None:
                try:
                    await self.shared.add_pool(pool, also=[Put(users_key, _json({self.host: 1}))])
                    return
                except Conflict as e:
                    if await self.shared.get_pool(pool.pool_id) is not None:
                        continue  # another host created it meanwhile: join it
                    raise await self._overlap(pool, e) from None
            if existing.automatic or pool.automatic:
                raise Conflict(f"pool {pool.cidr} is already in use by pynetdrv (an automatic pool is never shared)")
            if existing.subpool != pool.subpool:
                raise Conflict(
                    f"subnet {pool.cidr} is cluster network {await self._describe(existing)}, whose ip-range is "
                    f"{existing.subpool or 'the whole subnet'}, not {pool.subpool or 'the whole subnet'}")
            created = await self.client.get(self.keys.pool(pool.pool_id))
            seen = await self.client.get(users_key)
            if created is None:
                continue  # released meanwhile: create it
            users = _users(seen.value if seen else None)
            users[self.host] = users.get(self.host, 0) + 1
            r = await self.client.txn(
                [Compare(created.key, "create", "==", created.create_revision),
                 mod_revision_is(users_key, seen.mod_revision if seen else 0)],
                [Put(users_key, _json(users))])
            if r.succeeded:
                log.info("pool %s joined: cluster network used by %s", pool.cidr, ", ".join(sorted(users)))
                return
        raise Unavailable(f"pool {pool.cidr}: too many concurrent changes in etcd; try again")

    async def _overlap(self, pool: PoolRecord, e: Conflict) -> Conflict:
        """The add's Conflict, naming the cluster network (subnet, VNI, hosts) the new pool overlaps."""
        net = netaddr.IPNetwork(pool.cidr)
        for other in await self.shared.list_pools():
            o = netaddr.IPNetwork(other.cidr)
            if o.version == net.version and o.first <= net.last and o.last >= net.first:
                return Conflict(f"subnet {pool.cidr} overlaps cluster network {await self._describe(other)}")
        return e

    async def _describe(self, pool: PoolRecord) -> str:
        users = await self.users(pool.pool_id)
        vni = await self.client.get(self.keys.vni_of(pool.pool_id))
        parts = [f"VNI {int(vni.value)}"] if vni else []
        parts.append(f"used by host{'s' if len(users) != 1 else ''} {', '.join(sorted(users)) or 'none'}")
        return f"{pool.cidr} ({'; '.join(parts)})"

    async def users(self, pool_id: str) -> dict[str, int]:
        kv = await self.client.get(self.keys.pool_users(pool_id))
        return _users(kv.value if kv else None)

    async def get_pool(self, pool_id: str) -> PoolRecord | None:
        return await self.shared.get_pool(pool_id)

    async def list_pools(self) -> list[PoolRecord]:
        return await self.shared.list_pools()

    async def delete_pool(self, pool_id: str) -> bool:
        """This host stops using the pool; the last host's release deletes it (addresses, VNI too).
        False (nothing done) if this host did not use it."""
        users_key = self.keys.pool_users(pool_id)
        for _ in range(ROUNDS):
            seen = await self.client.get(users_key)
            users = _users(seen.value if seen else None)
            if self.host not in users:
                return False
            users[self.host] -= 1
            if users[self.host] <= 0:
                del users[self.host]
            guard = [mod_revision_is(users_key, seen.mod_revision if seen else 0)]
            if users:
                r = await self.client.txn(guard, [Put(users_key, _json(users))])
                if r.succeeded:
                    log.info("pool %s left; still used by %s", pool_id, ", ".join(sorted(users)))
                    return True
                continue
            vni = await self.client.get(self.keys.vni_of(pool_id))
            ops: list[Put | Delete | Get] = [
                Delete(self.keys.pool(pool_id)), Delete(self.keys.cursor(pool_id)),
                Delete(self.keys.allocs(pool_id), True), Delete(users_key), Delete(self.keys.vni_of(pool_id))]
            if vni is not None:
                ops.append(Delete(self.keys.vni(int(vni.value))))
            r = await self.client.txn(
                [*guard, mod_revision_is(self.keys.vni_of(pool_id), vni.mod_revision if vni else 0)], ops)
            if r.succeeded:
                log.info("pool %s deleted: no host uses it any more", pool_id)
                return True
        raise Unavailable(f"pool {pool_id}: too many concurrent changes in etcd; try again")

    # -- addresses ---------------------------------------------------------------------------------
    async def pool_state(self, pool_id: str) -> PoolState | None:
        return await self.shared.pool_state(pool_id)

    async def first_free(self, pool_id: str, lo: int, hi: int) -> int | None:
        return await self.shared.first_free(pool_id, lo, hi)

    async def reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str = "", cursor: CursorUpdate | None = None
    ) -> Reservation:
        r = await self.shared.reserve(pool_id, addr, kind, owner or self.host, cursor)
        if r.outcome == "taken" and r.held_by == "gateway" and kind == "gateway" and cursor is None:
            return RESERVED  # the cluster network's one gateway: every host's bridge answers it
        return r

    async def release(self, pool_id: str, addr: int, family: int) -> bool:
        pool = await self.shared.get_pool(pool_id)
        if pool is None:
            return False
        held = await self.client.get(self.keys.alloc(pool_id, addr, family))
        if held is not None and json.loads(held.value).get("kind") == "gateway":
            return False  # kept: shared by the hosts, it goes with the pool (delete_pool of the last host)
        return await self.shared.release(pool_id, addr, family)

    async def allocations(self, pool_id: str) -> list[Allocation]:
        return await self.shared.allocations(pool_id)

    # -- the cluster network's VNI -------------------------------------------------------------------
    async def vni(self, pool_id: str) -> int:
        """The VNI of the cluster network whose (first) pool is ``pool_id``: read, or allocated once
        (the lowest free of 1..4095, by create-only transaction, only while the pool exists)."""
        for _ in range(ROUNDS):
            kv = await self.client.get(self.keys.vni_of(pool_id))
            if kv is not None:
                return int(kv.value)
            taken = {int(k.key.rsplit(b"/", 1)[1]) for k in (await self.client.get_prefix(self.keys.vnis())).kvs}
            free = next((n for n in range(1, MAX_VNI + 1) if n not in taken), None)
            if free is None:
                raise Unavailable(f"no free VXLAN VNI left (all {MAX_VNI} are used by cluster networks)")
            r = await self.client.txn(
                [absent(self.keys.vni(free)), absent(self.keys.vni_of(pool_id)),
                 Compare(self.keys.pool(pool_id), "create", "!=", 0)],
                [Put(self.keys.vni(free), pool_id.encode()), Put(self.keys.vni_of(pool_id), b"%d" % free)],
                [Get(self.keys.pool(pool_id))])
            if r.succeeded:
                log.info("cluster network %s: VNI %d", pool_id, free)
                return free
            if r.gets[0] is None:
                raise Conflict(f"pool {pool_id} is not in the cluster store (released meanwhile?)")
        raise Unavailable(f"pool {pool_id}: too many concurrent VNI allocations in etcd; try again")


class ClusterStore:
    """``Store`` of a cluster host: pools and addresses from ``ClusterPools`` (etcd), networks and
    endpoints of this host from SQLite."""

    def __init__(self, local: SQLiteStore, pools: ClusterPools) -> None:
        self.local = local
        self.pools = pools

    async def close(self) -> None:
        try:
            await self.pools.client.close()
        finally:
            await self.local.close()

    # pools and addresses: shared
    async def add_pool(self, pool: PoolRecord) -> None:
        await self.pools.add_pool(pool)

    async def get_pool(self, pool_id: str) -> PoolRecord | None:
        return await self.pools.get_pool(pool_id)

    async def list_pools(self) -> list[PoolRecord]:
        return await self.pools.list_pools()

    async def delete_pool(self, pool_id: str) -> bool:
        return await self.pools.delete_pool(pool_id)

    async def pool_state(self, pool_id: str) -> PoolState | None:
        return await self.pools.pool_state(pool_id)

    async def first_free(self, pool_id: str, lo: int, hi: int) -> int | None:
        return await self.pools.first_free(pool_id, lo, hi)

    async def reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str = "", cursor: CursorUpdate | None = None
    ) -> Reservation:
        return await self.pools.reserve(pool_id, addr, kind, owner, cursor)

    async def release(self, pool_id: str, addr: int, family: int) -> bool:
        return await self.pools.release(pool_id, addr, family)

    async def allocations(self, pool_id: str) -> list[Allocation]:
        return await self.pools.allocations(pool_id)

    # networks and endpoints: this host's
    async def put_network(self, network: NetworkRecord, expected_version: int) -> int:
        return await self.local.put_network(network, expected_version)

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        return await self.local.get_network(network_id)

    async def list_networks(self) -> list[NetworkRecord]:
        return await self.local.list_networks()

    async def delete_network(self, network_id: str) -> bool:
        return await self.local.delete_network(network_id)

    async def put_endpoint(self, endpoint: EndpointRecord) -> None:
        await self.local.put_endpoint(endpoint)

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        return await self.local.get_endpoint(endpoint_id)

    async def list_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]:
        return await self.local.list_endpoints(network_id)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return await self.local.delete_endpoint(endpoint_id)


__all__ = ["MAX_VNI", "ClusterPools", "ClusterStore", "addr_hex"]
