"""Declaring a lost host gone for good (``pynetdrv cluster forget-host``): what it held is freed.

A lost host's registry records go with its lease, but its addresses, its pool uses and its VNIs
stay: it may come back, and handing its addresses to others would make duplicates.  An operator
who knows it will not come back (as it was) frees them here, in etcd transactions:

1. a tombstone for the host, written only if the host has no live record (compared in the same
   transaction, so a host coming back at that moment makes the forget fail, not race);
2. per pool: every address the host held (not the shared gateway) is deleted, only while it is
   still the value read (chunks of ``CHUNK`` keys: etcd's default limit is 128 operations per
   transaction), the pool's cursor put again (its version is the pool's version: allocations
   racing with the release read again), then the host's use count removed; the pool's last user
   frees the whole pool, its addresses and its VNI, as ``ClusterPools.delete_pool`` does;
3. its registry records (only leaseless leftovers can be there: leased ones went with the lease).

Every step compares what it read, so a second run (or a run after an interrupted one) finds
nothing more to do.  The tombstone stays: ``registry.tombstone`` refuses the host's return while it
still holds cluster records.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import netaddr

from pynetdrv.cluster.kv import KV, Compare, Delete, Op, Put, Snapshot, TxnResult, mod_revision_is, value_is
from pynetdrv.errors import Conflict, Unavailable
from pynetdrv.store.etcd_keys import Keys, addr_of

#: Allocation keys deleted per transaction (etcd allows 128 operations by default).
CHUNK = 100
ROUNDS = 16


class Client(Protocol):
    """The part of ``cluster.etcd.EtcdClient`` used here (tests give ``tests/fakes/etcd.FakeEtcd``)."""

    async def get(self, key: bytes) -> KV | None: ...

    async def get_prefix(self, prefix: bytes) -> Snapshot: ...

    async def txn(self, compare: Any, success: Any = (), failure: Any = ()) -> TxnResult: ...


class HostAlive(Conflict):
    """The host still renews its lease: it is up, not lost."""


@dataclass(frozen=True)
class PoolPlan:
    pool_id: str
    cidr: str
    addresses: tuple[KV, ...]  # the allocation keys the host holds (never the shared gateway)
    uses: int  # the host's count in pool-users
    last_user: bool  # no other host uses the pool: the pool, its addresses and its VNI go
    vni: int | None

    def line(self) -> str:
        ips = ", ".join(str(netaddr.IPAddress(addr_of(kv.key), netaddr.IPNetwork(self.cidr).version))
                        for kv in self.addresses[:8])
        more = f" (+{len(self.addresses) - 8} more)" if len(self.addresses) > 8 else ""
        held = f"{len(self.addresses)} address(es) released: {ips}{more}" if self.addresses else "no address held"
        if self.last_user:
            vni = f" and VNI {self.vni}" if self.vni is not None else ""
            return f"pool {self.pool_id}: {held}; last user: the pool{vni} freed"
        if self.uses:
            return f"pool {self.pool_id}: {held}; its use of the pool removed"
        return f"pool {self.pool_id}: {held}"


@dataclass(frozen=True)
class ForgetPlan:
    host: str
    alive: bool
    pools: tuple[PoolPlan, ...]
    records: tuple[bytes, ...]  # leftover (leaseless) registry keys of the host
    tombstone: KV | None

    @property
    def nothing_to_do(self) -> bool:
        return self.tombstone is not None and not self.pools and not self.records

    def lines(self) -> list[str]:
        out = [p.line() for p in self.pools]
        if self.records:
            out.append(f"{len(self.records)} registry record(s) of the host removed")
        if self.tombstone is None:
            out.append(f"tombstone written: host {self.host} is refused if it comes back with its old records")
        return out


async def plan_forget(client: Client, keys: Keys, host: str) -> ForgetPlan:
    """What forgetting ``host`` frees, read from etcd (nothing written)."""
    record = await client.get(keys.host(host))
    reg = ((record,) if record else ()) + (await client.get_prefix(keys.endpoints(host))).kvs
    alive = any(kv.lease for kv in reg)
    pools = []
    for kv in (await client.get_prefix(keys.pools())).kvs:
        plan = await _pool_plan(client, keys, host, json.loads(kv.value))
        if plan is not None:
            pools.append(plan)
    return ForgetPlan(host, alive, tuple(pools), tuple(kv.key for kv in reg if not kv.lease),
                      await client.get(keys.tombstone(host)))


async def _pool_plan(client: Client, keys: Keys, host: str, pool: dict[str, Any]) -> PoolPlan | None:
    pool_id = str(pool["pool_id"])
    held = tuple(kv for kv in (await client.get_prefix(keys.allocs(pool_id))).kvs
                 if (d := json.loads(kv.value)).get("owner") == host and d.get("kind") != "gateway")
    users_kv = await client.get(keys.pool_users(pool_id))
    users = {str(k): int(v) for k, v in json.loads(users_kv.value).items()} if users_kv else {}
    if not held and host not in users:
        return None
    last = host in users and len(users) == 1
    vni = await client.get(keys.vni_of(pool_id))
    return PoolPlan(pool_id, str(pool["cidr"]), held, users.get(host, 0), last, int(vni.value) if vni else None)


async def forget_host(client: Client, keys: Keys, host: str) -> ForgetPlan:
    """Frees what ``host`` held (see the module's docstring); returns the plan that was carried out.
    ``HostAlive`` if the host is up (its lease renewed), before anything is written."""
    plan = await plan_forget(client, keys, host)
    if plan.alive:
        raise HostAlive(f"host {host} is up (its registry lease is alive): only a lost host can be forgotten")
    if plan.tombstone is None:
        await _write_tombstone(client, keys, host)
    for pool in plan.pools:
        await _free_pool(client, keys, host, pool)
    if plan.records:
        await client.txn([], [Delete(k) for k in plan.records])
    return plan


async def _write_tombstone(client: Client, keys: Keys, host: str) -> None:
    hk, tk = keys.host(host), keys.tombstone(host)
    seen = await client.get(hk)
    if seen is not None and seen.lease:
        raise HostAlive(f"host {host} is up (its registry lease is alive): only a lost host can be forgotten")
    stone = json.dumps({"host": host, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
    r = await client.txn([mod_revision_is(hk, seen.mod_revision if seen else 0)], [Put(tk, stone)])
    if not r.succeeded:
        raise HostAlive(f"host {host} came back while it was being forgotten; nothing was freed")


async def _free_pool(client: Client, keys: Keys, host: str, pool: PoolPlan) -> None:
    for i in range(0, len(pool.addresses), CHUNK):
        await _release_chunk(client, keys, pool.pool_id, pool.addresses[i:i + CHUNK])
    users_key = keys.pool_users(pool.pool_id)
    for _ in range(ROUNDS):
        seen = await client.get(users_key)
        users = {str(k): int(v) for k, v in json.loads(seen.value).items()} if seen else {}
        if host not in users:
            return
        del users[host]
        guard = [mod_revision_is(users_key, seen.mod_revision if seen else 0)]
        if users:
            ops: list[Op] = [Put(users_key, json.dumps(users, sort_keys=True).encode())]
        else:
            vni = await client.get(keys.vni_of(pool.pool_id))
            guard.append(mod_revision_is(keys.vni_of(pool.pool_id), vni.mod_revision if vni else 0))
            ops = [Delete(keys.pool(pool.pool_id)), Delete(keys.cursor(pool.pool_id)),
                   Delete(keys.allocs(pool.pool_id), True), Delete(users_key), Delete(keys.vni_of(pool.pool_id)),
                   *([Delete(keys.vni(int(vni.value)))] if vni else [])]
        if (await client.txn(guard, ops)).succeeded:
            return
    raise Unavailable(f"pool {pool.pool_id}: too many concurrent changes in etcd; run forget-host again")


async def _release_chunk(client: Client, keys: Keys, pool_id: str, held: tuple[KV, ...]) -> None:
    """Each key deleted only if it still holds what was read; the cursor put again (same value) so
    the pool's version moves and a racing allocation reads again.  A key that changed is left."""
    ck = keys.cursor(pool_id)
    for _ in range(ROUNDS):
        now = {kv.key: kv for kv in (await client.get_prefix(keys.allocs(pool_id))).kvs}
        still = [kv for kv in held if (cur := now.get(kv.key)) is not None and cur.value == kv.value]
        cursor = await client.get(ck)
        if not still or cursor is None:
            return
        compare: list[Compare] = [mod_revision_is(ck, cursor.mod_revision),
                                  *(value_is(kv.key, kv.value) for kv in still)]
        if (await client.txn(compare, [*(Delete(kv.key) for kv in still), Put(ck, cursor.value)])).succeeded:
            return
    raise Unavailable(f"pool {pool_id}: too many concurrent changes in etcd; run forget-host again")
