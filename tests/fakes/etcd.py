"""An in-memory etcd behind the seam of ``pynetdrv.cluster.etcd.EtcdClient`` (the methods the store
and the registry call), for unit tests: revisions, versions, transactions with etcd's comparison
rules, leases (expired by the test), watches from a revision, compaction, and an outage switch
(``down``: every call raises EtcdUnavailable naming the fake endpoint, as the real client does
when etcd cannot be reached)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from pynetdrv.cluster.errors import EtcdLeaseLost, EtcdUnavailable
from pynetdrv.cluster.etcd import WatchCompacted
from pynetdrv.cluster.kv import KV, Compare, Delete, Get, Op, Put, Snapshot, TxnResult, WatchEvent


def _prefix_end(prefix: bytes) -> bytes:
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return b"\0"
    b[-1] += 1
    return bytes(b)


class FakeEtcd:
    def __init__(self) -> None:
        self.names = ("fake-etcd:2379",)
        self.revision = 1
        self.kvs: dict[bytes, KV] = {}
        self.leases: dict[int, int] = {}  # id -> ttl
        self._next_lease = 0x100
        self.events: list[WatchEvent] = []
        self.compacted = 0
        self.down = False
        self._tick = asyncio.Event()  # set (and replaced) on every change: watchers wake up
        self.calls = 0

    # -- test controls -----------------------------------------------------------------------------
    def expire(self, lease: int) -> None:
        """The lease is gone (its TTL ran out while nobody renewed it): its keys go."""
        self.leases.pop(lease, None)
        for key in [k for k, kv in self.kvs.items() if kv.lease == lease]:
            self._delete(key)

    def compact(self) -> None:
        """Drop the watch history up to now: watches from an older revision get WatchCompacted."""
        self.compacted = self.revision
        self.events.clear()

    async def notify(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    def _check(self, what: str) -> None:
        self.calls += 1
        if self.down:
            raise EtcdUnavailable(self.names, what, "UNAVAILABLE: connection refused (fake)")

    # -- writes ------------------------------------------------------------------------------------
    def _put(self, key: bytes, value: bytes, lease: int) -> None:
        if lease and lease not in self.leases:
            raise EtcdLeaseLost(self.names, f"put {key!r}", "etcdserver: requested lease not found")
        self.revision += 1
        old = self.kvs.get(key)
        kv = KV(key, value, old.create_revision if old else self.revision, self.revision,
                (old.version if old else 0) + 1, lease)
        self.kvs[key] = kv
        self.events.append(WatchEvent("put", self.revision, kv))

    def _delete(self, key: bytes, prefix: bool = False) -> int:
        keys = [k for k in self.kvs if k.startswith(key)] if prefix else ([key] if key in self.kvs else [])
        if not keys:
            return 0
        self.revision += 1
        for k in keys:
            old = self.kvs.pop(k)
            self.events.append(WatchEvent("delete", self.revision, replace(old, value=b"", mod_revision=self.revision)))
        return len(keys)

    async def close(self) -> None:
        pass

    async def get(self, key: bytes) -> KV | None:
        self._check(f"get {key!r}")
        return self.kvs.get(key)

    async def get_prefix(self, prefix: bytes) -> Snapshot:
        self._check(f"get prefix {prefix!r}")
        return Snapshot(self.revision, tuple(sorted((kv for k, kv in self.kvs.items() if k.startswith(prefix)),
                                                    key=lambda kv: kv.key)))

    async def range(self, key: bytes, end: bytes, limit: int) -> list[KV]:
        self._check(f"range {key!r}")
        return sorted((kv for k, kv in self.kvs.items() if key <= k < end), key=lambda kv: kv.key)[:limit]

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        self._check(f"put {key!r}")
        self._put(key, value, lease)
        await self.notify()
        return self.revision

    async def delete(self, key: bytes, prefix: bool = False) -> int:
        self._check(f"delete {key!r}")
        n = self._delete(key, prefix)
        await self.notify()
        return n

    def _holds(self, c: Compare) -> bool:
        kv = self.kvs.get(c.key)
        actual: bytes | int
        if c.target == "value":
            actual = kv.value if kv else b""
            if kv is None:
                return False  # etcd: a value comparison on a missing key is false
        else:
            field = {"mod": "mod_revision", "create": "create_revision", "version": "version"}[c.target]
            actual = getattr(kv, field) if kv else 0
        ops = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
               ">": lambda a, b: a > b}
        return bool(ops[c.op](actual, c.value))

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op] = (),
                  failure: Sequence[Op] = ()) -> TxnResult:
        self._check("transaction")
        ok = all(self._holds(c) for c in compare)
        gets: list[KV | None] = []
        deleted = 0
        for op in success if ok else failure:
            if isinstance(op, Put):
                self._put(op.key, op.value, op.lease)
            elif isinstance(op, Delete):
                deleted += self._delete(op.key, op.prefix)
            elif isinstance(op, Get):
                gets.append(self.kvs.get(op.key))
        await self.notify()
        return TxnResult(ok, self.revision, tuple(gets), deleted)

    # -- leases ------------------------------------------------------------------------------------
    async def grant_lease(self, ttl: int) -> int:
        self._check(f"grant a {ttl} s lease")
        self._next_lease += 1
        self.leases[self._next_lease] = ttl
        return self._next_lease

    async def refresh_lease(self, lease: int) -> int:
        self._check(f"refresh lease {lease:x}")
        return self.leases.get(lease, 0)

    async def revoke_lease(self, lease: int) -> None:
        self._check(f"revoke lease {lease:x}")
        self.expire(lease)
        await self.notify()

    # -- watch -------------------------------------------------------------------------------------
    async def watch_once(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchEvent]:
        self._check(f"watch {prefix!r}")
        if start_revision <= self.compacted:
            raise WatchCompacted(f"required revision {start_revision} has been compacted")
        nxt = start_revision
        while True:
            tick = self._tick  # taken before looking: a change after the look sets it
            if self.down:
                raise EtcdUnavailable(self.names, f"watch {prefix!r}", "UNAVAILABLE: stream broken (fake)")
            if nxt <= self.compacted:
                raise WatchCompacted(f"required revision {nxt} has been compacted")
            pending = [e for e in self.events if e.revision >= nxt and e.kv is not None
                       and e.kv.key.startswith(prefix)]
            for ev in pending:
                nxt = ev.revision + 1
                yield ev
            if not pending:
                nxt = max(nxt, self.revision + 1)
                await tick.wait()


__all__ = ["FakeEtcd", "_prefix_end"]
