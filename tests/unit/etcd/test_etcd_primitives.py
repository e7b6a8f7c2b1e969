"""Each primitive of pynetdrv.cluster.etcd against the worker's real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from etcd_server import EtcdServer

from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.kv import Compare, Delete, Get, Put, absent, value_is


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[EtcdClient]:
    c = EtcdClient.from_url(f"etcd://{etcd_server.endpoint}", timeout=2)
    try:
        yield c
    finally:
        await c.close()


async def test_put_get_and_revisions(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"a"
    assert await client.get(k) is None
    rev1 = await client.put(k, b"one")
    kv = await client.get(k)
    assert kv is not None
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version) == (k, b"one", rev1, rev1, 1)
    rev2 = await client.put(k, b"two")
    assert rev2 > rev1
    kv = await client.get(k)
    assert kv is not None and (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"two", rev1, rev2, 2)


async def test_get_prefix_is_sorted_bounded_and_carries_the_revision(client: EtcdClient, etcd_prefix: bytes) -> None:
    for name in (b"b", b"a", b"c/d"):
        await client.put(etcd_prefix + name, name)
    await client.put(etcd_prefix[:-1] + b"x", b"outside")  # shares the bytes but not the prefix
    try:
        last = await client.put(etcd_prefix + b"e", b"e")
        snap = await client.get_prefix(etcd_prefix)
        assert [kv.key for kv in snap.kvs] == [etcd_prefix + n for n in (b"a", b"b", b"c/d", b"e")]
        assert snap.revision >= last
        assert snap.as_dict()[etcd_prefix + b"c/d"].value == b"c/d"
    finally:
        await client.delete(etcd_prefix[:-1] + b"x")


async def test_put_if_absent_returns_the_winner(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"pool"
    assert await client.put_if_absent(k, b"mine") == (True, None)
    ok, current = await client.put_if_absent(k, b"theirs")
    assert not ok and current is not None and current.value == b"mine"
    assert (await client.get(k)).value == b"mine"  # type: ignore[union-attr]


async def test_put_if_absent_race_has_exactly_one_winner(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"ip/10.0.0.5"
    results = await asyncio.gather(*(client.put_if_absent(k, f"host{i}".encode()) for i in range(8)))
    winners = [i for i, (ok, _) in enumerate(results) if ok]
    assert len(winners) == 1
    stored = await client.get(k)
    assert stored is not None and stored.value == f"host{winners[0]}".encode()
    assert all(cur is not None and cur.value == stored.value for ok, cur in results if not ok)


async def test_compare_and_swap_on_mod_revision(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"cursor"
    assert await client.compare_and_swap(k, b"1", 0) == (True, None)  # 0: only if absent
    ok, cur = await client.compare_and_swap(k, b"x", 0)
    assert not ok and cur is not None and cur.value == b"1"
    kv = await client.get(k)
    assert kv is not None
    assert await client.compare_and_swap(k, b"2", kv.mod_revision) == (True, None)
    ok, cur = await client.compare_and_swap(k, b"3", kv.mod_revision)  # stale revision: refused
    assert not ok and cur is not None and cur.value == b"2"
    await client.delete(k)
    assert await client.compare_and_swap(k, b"4", cur.mod_revision) == (False, None)  # gone: refused, None


async def test_concurrent_cas_increments_lose_nothing(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"counter"
    await client.put(k, b"0")

    async def incr() -> None:
        while True:
            kv = await client.get(k)
            assert kv is not None
            ok, _ = await client.compare_and_swap(k, str(int(kv.value) + 1).encode(), kv.mod_revision)
            if ok:
                return

    await asyncio.gather(*(incr() for _ in range(10)))
    assert (await client.get(k)).value == b"10"  # type: ignore[union-attr]


async def test_delete_if_value_only_deletes_our_value(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"owner"
    await client.put(k, b"host-a")
    assert await client.delete_if_value(k, b"host-b") is False
    assert await client.get(k) is not None
    assert await client.delete_if_value(k, b"host-a") is True
    assert await client.get(k) is None
    assert await client.delete_if_value(k, b"host-a") is False  # idempotent: nothing left to delete


async def test_delete_and_delete_prefix_are_idempotent(client: EtcdClient, etcd_prefix: bytes) -> None:
    await client.put(etcd_prefix + b"d/1", b"")
    await client.put(etcd_prefix + b"d/2", b"")
    await client.put(etcd_prefix + b"keep", b"")
    assert await client.delete(etcd_prefix + b"d/", prefix=True) == 2
    assert await client.delete(etcd_prefix + b"d/", prefix=True) == 0
    assert [kv.key for kv in (await client.get_prefix(etcd_prefix)).kvs] == [etcd_prefix + b"keep"]
    assert await client.delete(etcd_prefix + b"keep") == 1
    assert await client.delete(etcd_prefix + b"keep") == 0


async def test_txn_runs_one_branch_atomically(client: EtcdClient, etcd_prefix: bytes) -> None:
    pool, addr = etcd_prefix + b"pool", etcd_prefix + b"addr/10.0.0.2"
    await client.put(pool, b"cursor=1")
    pool_kv = await client.get(pool)
    assert pool_kv is not None
    # Reserve the address if free AND the cursor unchanged; read both back in the same revision.
    r = await client.txn([absent(addr), Compare(pool, "mod", "==", pool_kv.mod_revision)],
                         [Put(addr, b"ep1"), Put(pool, b"cursor=2"), Get(addr), Get(pool)], [Get(addr)])
    assert r.succeeded and r.revision > pool_kv.mod_revision
    assert [kv.value if kv else None for kv in r.gets] == [b"ep1", b"cursor=2"]
    # The same again fails as a whole: nothing of the success branch is written.
    r2 = await client.txn([absent(addr), Compare(pool, "mod", "==", pool_kv.mod_revision)],
                          [Put(addr, b"ep2"), Put(pool, b"cursor=3")], [Get(addr), Get(etcd_prefix + b"none")])
    assert not r2.succeeded
    assert r2.gets[0] is not None and r2.gets[0].value == b"ep1" and r2.gets[1] is None
    assert (await client.get(pool)).value == b"cursor=2"  # type: ignore[union-attr]
    r3 = await client.txn([value_is(addr, b"ep1")], [Delete(addr)])
    assert r3.succeeded and r3.deleted == 1


async def test_txn_rejects_a_mistyped_comparison(client: EtcdClient, etcd_prefix: bytes) -> None:
    with pytest.raises(TypeError, match="needs an int"):
        await client.txn([Compare(etcd_prefix + b"k", "mod", "==", b"1")], [Put(etcd_prefix + b"k", b"v")])
    assert await client.get(etcd_prefix + b"k") is None
