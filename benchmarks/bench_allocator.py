"""Allocation speed as a pool fills: prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_allocator.py [--state PATH]

For a /16 it times RequestAddress-equivalent reservations at several fill
levels (empty, half, 99 %, the very last address) and a release+reuse; for a
/64 it times reservations after the cursor has moved far, and a static
reservation near the end.  The store is the real SQLiteStore on an in-memory
database, so the figures show the allocator, not the disk; give --state PATH
to include the fsync of every commit (synchronous=FULL, as in production;
filling a /16 then takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pynetdrv.store.base import PoolRecord
from pynetdrv.store.sqlite import SQLiteStore


async def timed(store: SQLiteStore, pool_id: str, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await store.reserve_address(pool_id, None, "dynamic")
    return (time.perf_counter() - t0) / n * 1e6


async def fill(store: SQLiteStore, pool_id: str, n: int) -> None:
    # Many reservations per batch through the same code path, to reach high
    # fill levels quickly; timing is only taken by ``timed``.
    for _ in range(n):
        await store.reserve_address(pool_id, None, "dynamic")


async def main(path: str) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.add_pool(PoolRecord("v4", "local", "10.0.0.0/16"))
        total = 65534
        done = 0
        print(f"store: {path}")
        print("pool 10.0.0.0/16 (65534 usable addresses)")
        for target in (0, total // 2, total - 700, total - 1):
            await fill(store, "v4", target - done)
            done = target
            n = 1 if target == total - 1 else 200
            us = await timed(store, "v4", n)
            done += n
            print(f"  fill {done - n:6d} -> reserve next: {us:9.1f} us/address")
        t0 = time.perf_counter()
        await store.release_address("v4", "10.0.128.7")
        got = await store.reserve_address("v4", None, "dynamic")
        print(f"  full pool: release one + reserve it again: {(time.perf_counter() - t0) * 1e6:9.1f} us ({got})")

        await store.add_pool(PoolRecord("v6", "local", "fd00::/64"))
        print("pool fd00::/64")
        print(f"  reserve next (fresh):                 {await timed(store, 'v6', 200):9.1f} us/address")
        await fill(store, "v6", 5000)
        print(f"  reserve next after 5200:              {await timed(store, 'v6', 200):9.1f} us/address")
        t0 = time.perf_counter()
        await store.reserve_address("v6", "fd00::ffff:ffff:ffff:fff0", "static")
        print(f"  static reserve near the end:          {(time.perf_counter() - t0) * 1e6:9.1f} us")
    finally:
        await store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", help="SQLite file to use (default: in memory)")
    args = ap.parse_args()
    asyncio.run(main(args.state or ":memory:"))
