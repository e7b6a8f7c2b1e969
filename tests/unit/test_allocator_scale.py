"""Address allocation at scale and under concurrency: filling a /16, a
few thousand addresses in a /64, and concurrent reservations (one store, the
IpamService, two stores on one file) never handing out an address twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import netaddr
import pytest
from unit_helpers import ask, give_back, new_pool

from pynetdrv.errors import Unavailable
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.base import PoolRecord
from pynetdrv.store.sqlite import SQLiteStore

# Scale ---------------------------------------------------------------------------------

async def test_fill_a_slash_16_then_exhaustion_then_exact_reuse(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.1.0.0/16")
    assert await ask(ipam, pid, gateway=True) == "10.1.0.1/16"
    t0 = time.monotonic()
    got: list[str] = []
    batch = 4096
    remaining = 65533
    while remaining:
        k = min(batch, remaining)
        got += await asyncio.gather(*(Allocator(store).reserve(pid, None, "dynamic") for _ in range(k)))
        remaining -= k
    elapsed = time.monotonic() - t0
    assert len(got) == 65533 and len(set(got)) == 65533
    assert got[0] == "10.1.0.2" and got[-1] == "10.1.255.254"
    assert elapsed < 40, f"filling a /16 took {elapsed:.1f}s"
    with pytest.raises(Unavailable, match=r"10\.1\.0\.0/16"):
        await ask(ipam, pid)
    await give_back(ipam, pid, "10.1.128.77")
    assert await ask(ipam, pid) == "10.1.128.77/16"
    with pytest.raises(Unavailable, match=r"10\.1\.0\.0/16"):
        await ask(ipam, pid)
    assert len(await store.allocations(pid)) == 65534


async def test_slash_64_few_thousand_then_reserve_near_end_quickly(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "fd00:1::/64")
    await ask(ipam, pid, gateway=True)
    got = await asyncio.gather(*(Allocator(store).reserve(pid, None, "dynamic") for _ in range(3000)))
    assert len(set(got)) == 3000
    assert got[-1] == str(netaddr.IPAddress(int(netaddr.IPAddress("fd00:1::")) + 3001))
    t0 = time.monotonic()
    assert await ask(ipam, pid, "fd00:1::ffff:ffff:ffff:fff0") == "fd00:1::ffff:ffff:ffff:fff0/64"
    assert await ask(ipam, pid) == "fd00:1::bba/64"
    await give_back(ipam, pid, "fd00:1::ffff:ffff:ffff:fff0")
    assert await ask(ipam, pid, "fd00:1::ffff:ffff:ffff:fff0") == "fd00:1::ffff:ffff:ffff:fff0/64"
    assert time.monotonic() - t0 < 1.0


# Concurrency --------------------------------------------------------------------------

async def test_200_concurrent_reservations_are_distinct(store: SQLiteStore) -> None:
    await store.add_pool(PoolRecord("p", "local", "10.4.0.0/24"))
    got = await asyncio.gather(*(Allocator(store).reserve("p", None, "dynamic") for _ in range(200)))
    assert len(set(got)) == 200
    assert all(netaddr.IPAddress(ip) in netaddr.IPNetwork("10.4.0.0/24") for ip in got)
    assert sorted(a.address for a in await store.allocations("p")) == sorted(got)


async def test_200_concurrent_request_address_calls_are_distinct(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.4.0.0/24")
    got = await asyncio.gather(*(ask(ipam, pid) for _ in range(200)), ask(ipam, pid, gateway=True))
    assert len(set(got)) == 201


async def test_two_stores_on_one_file_never_hand_out_the_same_address(tmp_path: Path) -> None:
    """As with two daemons racing on one state file: the database, not a
    lock in the process, keeps reservations unique."""
    a, b = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    await a.open()
    await b.open()
    try:
        await a.add_pool(PoolRecord("p", "local", "10.5.0.0/24"))
        got = await asyncio.gather(*(Allocator(s).reserve("p", None, "dynamic") for _ in range(100) for s in (a, b)))
        assert len(got) == 200 and len(set(got)) == 200
    finally:
        await a.close()
        await b.close()
