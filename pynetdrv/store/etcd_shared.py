"""``SharedStore`` (pools, the allocation primitive, networks) on etcd; key layout in ``etcd_keys``.

A reservation is ONE etcd transaction: the allocation key is absent AND the pool exists AND (for an
automatic reservation) the cursor key is at the expected version -> put the allocation (and the
cursor).  If it fails, the values read in the failure branch say why: no_pool, moved or taken.  (One
read of the immutable pool record comes first, for the address family that sets the key width.)  So
two hosts can never hold one address, whatever they race on.  Every call is bounded by the client's
timeout and fails with ``EtcdUnavailable`` naming etcd when it cannot be reached.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import netaddr

from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.kv import KV, Compare, Delete, Get, Put, absent, mod_revision_is
from pynetdrv.errors import Conflict, VersionConflict
from pynetdrv.ipam.addresses import parse_cidr
from pynetdrv.ipam.allocator import range_bounds
from pynetdrv.ipam.records import (
    MOVED,
    NO_POOL,
    RESERVED,
    Allocation,
    AllocationKind,
    CursorUpdate,
    PoolRecord,
    PoolState,
    Reservation,
)
from pynetdrv.store.base import NetworkRecord
from pynetdrv.store.etcd_keys import Keys, addr_hex, addr_of

#: Allocation keys read per range request by ``first_free``.
PAGE = 256


def _exists(key: bytes) -> Compare:
    return Compare(key, "create", "!=", 0)


def _pool_json(pool: PoolRecord) -> bytes:
    return json.dumps(dataclasses.asdict(pool), sort_keys=True).encode()


def _pool_of(kv: KV) -> PoolRecord:
    return PoolRecord(**json.loads(kv.value))


def _family(pool: PoolRecord) -> int:
    return int(netaddr.IPNetwork(pool.cidr).version)


class EtcdSharedStore:
    def __init__(self, client: EtcdClient, prefix: bytes = b"/pynetdrv/v1/") -> None:
        self.client = client
        self.keys = Keys(prefix)

    # -- pools -----------------------------------------------------------------------------------------
    async def add_pool(self, pool: PoolRecord, also: Sequence[Put] = ()) -> None:
        """The overlap check and the creation are atomic across hosts: every pool creation also puts
        the ``pools-changed`` key, and the creation commits only if that key is as it was before the
        pools were read (else: read again).  ``also``: more keys put in the same transaction."""
        net = parse_cidr(pool.cidr, "pool")
        k, c, mark = self.keys.pool(pool.pool_id), self.keys.cursor(pool.pool_id), self.keys.pools_changed()
        cursor = range_bounds(pool)[0]
        while True:
            seen = await self.client.get(mark)
            for other in await self.list_pools():
                o = netaddr.IPNetwork(other.cidr)
                if o.version == net.version and o.first <= net.last and o.last >= net.first:
                    raise Conflict(f"pool {pool.cidr} overlaps pool {other.cidr} already in use by pynetdrv")
            r = await self.client.txn(
                [absent(k), absent(c), mod_revision_is(mark, seen.mod_revision if seen else 0)],
                [Put(k, _pool_json(pool)), Put(c, b"%x" % cursor), Put(mark, b""), *also], [Get(k)])
            if r.succeeded:
                return
            if r.gets[0] is not None:
                raise Conflict(f"pool {pool.pool_id} already exists")

    async def get_pool(self, pool_id: str) -> PoolRecord | None:
        kv = await self.client.get(self.keys.pool(pool_id))
        return _pool_of(kv) if kv else None

    async def list_pools(self) -> list[PoolRecord]:
        return [_pool_of(kv) for kv in (await self.client.get_prefix(self.keys.pools())).kvs]

    async def delete_pool(self, pool_id: str) -> bool:
        k = self.keys.pool(pool_id)
        r = await self.client.txn(
            [_exists(k)], [Delete(k), Delete(self.keys.cursor(pool_id)), Delete(self.keys.allocs(pool_id), True)])
        return r.succeeded

    async def pool_state(self, pool_id: str) -> PoolState | None:
        r = await self.client.txn([], [Get(self.keys.pool(pool_id)), Get(self.keys.cursor(pool_id))])
        pool, cursor = r.gets
        if pool is None or cursor is None:
            return None
        return PoolState(_pool_of(pool), int(cursor.value, 16), cursor.version)

    # -- the allocation primitive ----------------------------------------------------------------------
    async def first_free(self, pool_id: str, lo: int, hi: int) -> int | None:
        """Pages through the allocated keys from ``lo`` (never the free addresses): the first gap."""
        if lo > hi:
            return None
        pool = await self.get_pool(pool_id)
        if pool is None:
            return None
        v = _family(pool)
        if hi >= 1 << (32 if v == 4 else 128):
            hi = (1 << (32 if v == 4 else 128)) - 1
            if lo > hi:
                return None
        want = lo
        end = self.keys.alloc(pool_id, hi, v) + b"\0"
        start = self.keys.alloc(pool_id, lo, v)
        while True:
            page = await self.client.range(start, end, PAGE)
            for kv in page:
                addr = addr_of(kv.key)
                if addr > want:
                    return want
                want = addr + 1
                if want > hi:
                    return None
            if len(page) < PAGE:
                return want
            start = page[-1].key + b"\0"

    async def reserve(
        self, pool_id: str, addr: int, kind: AllocationKind, owner: str = "", cursor: CursorUpdate | None = None
    ) -> Reservation:
        pool = await self.get_pool(pool_id)
        if pool is None:
            return NO_POOL
        v = _family(pool)
        pk, ak, ck = self.keys.pool(pool_id), self.keys.alloc(pool_id, addr, v), self.keys.cursor(pool_id)
        compare = [_exists(pk), absent(ak)]
        success: list[Put] = [Put(ak, json.dumps({"kind": kind, "owner": owner}).encode())]
        if cursor is not None:
            compare.append(Compare(ck, "version", "==", cursor.expected_version))
            success.append(Put(ck, b"%x" % cursor.new_cursor))
        r = await self.client.txn(compare, success, [Get(pk), Get(ck), Get(ak)])
        if r.succeeded:
            return RESERVED
        now_pool, now_cursor, held = r.gets
        if now_pool is None or now_cursor is None:
            return NO_POOL
        if cursor is not None and now_cursor.version != cursor.expected_version:
            return MOVED
        if held is not None:
            return Reservation("taken", json.loads(held.value).get("kind"))
        return MOVED  # the pool was replaced between the read and the transaction: read again

    async def release(self, pool_id: str, addr: int, family: int) -> bool:
        """Delete the allocation and put the cursor again (same value): the pool's version + 1."""
        pool = await self.get_pool(pool_id)
        if pool is None or _family(pool) != family:
            return False
        ak, ck = self.keys.alloc(pool_id, addr, family), self.keys.cursor(pool_id)
        while True:
            cur = await self.client.get(ck)
            if cur is None:
                return False
            r = await self.client.txn(
                [_exists(ak), Compare(ck, "mod", "==", cur.mod_revision)], [Delete(ak), Put(ck, cur.value)],
                [Get(ak)])
            if r.succeeded:
                return True
            if r.gets[0] is None:
                return False
            # The cursor moved meanwhile: read it again.

    async def allocations(self, pool_id: str) -> list[Allocation]:
        pool = await self.get_pool(pool_id)
        if pool is None:
            return []
        v = _family(pool)
        out = []
        for kv in (await self.client.get_prefix(self.keys.allocs(pool_id))).kvs:
            d = json.loads(kv.value)
            out.append(Allocation(str(netaddr.IPAddress(addr_of(kv.key), v)), d["kind"], d.get("owner", "")))
        return out

    # -- networks --------------------------------------------------------------------------------------
    async def put_network(self, network: NetworkRecord, expected_version: int) -> int:
        """The bridge-name check is atomic with the write the same way as pools' overlap check (the
        ``networks-changed`` key)."""
        k, mark = self.keys.network(network.network_id), self.keys.networks_changed()
        data = dataclasses.asdict(network)
        del data["version"]
        cmp = absent(k) if expected_version == 0 else Compare(k, "version", "==", expected_version)
        while True:
            seen = await self.client.get(mark)
            for other in await self.list_networks():
                if other.bridge == network.bridge and other.network_id != network.network_id:
                    raise Conflict(
                        f"bridge name {network.bridge} is already used by network {other.network_id[:12]}")
            r = await self.client.txn([cmp, mod_revision_is(mark, seen.mod_revision if seen else 0)],
                                      [Put(k, json.dumps(data).encode()), Put(mark, b"")], [Get(k)])
            if r.succeeded:
                return expected_version + 1
            now = r.gets[0]
            if (now.version if now else 0) == expected_version:
                continue  # only the mark moved: another network changed meanwhile; check again
            break
        stored = now.version if now else 0
        raise VersionConflict.of_network(network.network_id, stored, expected_version)

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        kv = await self.client.get(self.keys.network(network_id))
        return _network_of(kv) if kv else None

    async def list_networks(self) -> list[NetworkRecord]:
        return [_network_of(kv) for kv in (await self.client.get_prefix(self.keys.networks())).kvs]

    async def delete_network(self, network_id: str) -> bool:
        return await self.client.delete(self.keys.network(network_id)) > 0


def _network_of(kv: KV) -> NetworkRecord:
    d: dict[str, Any] = json.loads(kv.value)
    d["gateways"], d["pools"] = tuple(d["gateways"]), tuple(d["pools"])
    names = {f.name for f in dataclasses.fields(NetworkRecord)}
    return NetworkRecord(**{**{k: v for k, v in d.items() if k in names}, "version": kv.version})


__all__ = ["EtcdSharedStore", "addr_hex"]
