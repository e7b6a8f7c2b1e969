"""Leases: a key on a lease goes when the lease expires; KeptLease keeps it, and re-grants + calls
back when etcd lost the lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from etcd_server import EtcdServer

from pynetdrv.cluster.errors import EtcdLeaseLost
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.lease import KeptLease


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[EtcdClient]:
    async with EtcdClient.from_url(f"etcd://{etcd_server.endpoint}", timeout=2) as c:
        yield c


async def _gone_within(c: EtcdClient, key: bytes, seconds: float) -> float:
    start = time.monotonic()
    while await c.get(key) is not None:
        assert time.monotonic() - start < seconds, f"{key!r} still there after {seconds} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def test_key_goes_when_its_lease_expires(client: EtcdClient, etcd_prefix: bytes) -> None:
    lease = await client.grant_lease(2)
    k = etcd_prefix + b"host/a"
    assert await client.put_if_absent(k, b"alive", lease=lease) == (True, None)
    kv = await client.get(k)
    assert kv is not None and kv.lease == lease
    assert 0 < await client.refresh_lease(lease) <= 2
    took = await _gone_within(client, k, 4.0)
    assert took > 1.0  # not deleted at once: expired
    assert await client.refresh_lease(lease) <= 0
    with pytest.raises(EtcdLeaseLost, match="lease not found"):
        await client.put(k, b"again", lease=lease)


async def test_revoke_deletes_at_once_and_is_idempotent(client: EtcdClient, etcd_prefix: bytes) -> None:
    lease = await client.grant_lease(30)
    await client.put(etcd_prefix + b"k", b"v", lease=lease)
    await client.revoke_lease(lease)
    assert await client.get(etcd_prefix + b"k") is None
    await client.revoke_lease(lease)


async def test_kept_lease_outlives_its_ttl_and_revoke_on_close(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"host/b"
    async with KeptLease(client, ttl=2) as lease:
        await client.put(k, b"alive", lease=lease.id)
        await asyncio.sleep(3.0)  # 1.5 TTLs: only the keepalive keeps it
        kv = await client.get(k)
        assert kv is not None and kv.lease == lease.id
        assert lease.regrants == 0
    assert await client.get(k) is None  # closed: revoked


async def test_kept_lease_stopped_without_revoke_expires(client: EtcdClient, etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"host/c"
    lease = KeptLease(client, ttl=2)
    await lease.start()
    await client.put(k, b"alive", lease=lease.id)
    await lease.close(revoke=False)
    await _gone_within(client, k, 4.0)


async def test_lost_lease_is_granted_again_and_the_owner_writes_again(client: EtcdClient,
                                                                      etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"host/d"
    registered = asyncio.Event()

    async def register(lease_id: int) -> None:
        await client.put(k, b"alive", lease=lease_id)
        registered.set()

    async with KeptLease(client, ttl=3, on_new_lease=register) as lease:
        first = lease.id
        await register(first)
        registered.clear()
        await client.revoke_lease(first)  # as if it had expired during an outage
        assert await client.get(k) is None
        await asyncio.wait_for(registered.wait(), 3.0)  # the next refresh (ttl/3) notices
        assert lease.id != first and lease.regrants == 1
        kv = await client.get(k)
        assert kv is not None and kv.lease == lease.id


def test_kept_lease_needs_a_useful_ttl(etcd_server: EtcdServer) -> None:
    with pytest.raises(ValueError, match="ttl >= 2"):
        KeptLease(EtcdClient.from_url(f"etcd://{etcd_server.endpoint}"), ttl=1)


async def test_kept_lease_survives_a_short_etcd_restart(etcd_restartable: EtcdServer, client: EtcdClient,
                                                        etcd_prefix: bytes) -> None:
    k = etcd_prefix + b"host/e"
    async with KeptLease(client, ttl=2) as lease:
        first = lease.id
        await client.put(k, b"alive", lease=first)
        etcd_restartable.stop()
        await asyncio.sleep(0.7)  # at least one refresh fails meanwhile
        etcd_restartable.start()
        await asyncio.sleep(3.5)  # > TTL + the extension etcd gives leases on restart: only refreshes keep it
        kv = await client.get(k)
        assert kv is not None and kv.lease == first
        assert lease.id == first and lease.regrants == 0
