"""Allocators racing over one store, as daemons on several hosts (or two
processes on one state file) do: the compare-and-swap of ``reserve`` makes a
lost race a retry, never a duplicate and never a cursor moved backwards.

Property-based (hypothesis): two allocators run random operation lists
concurrently; over the fake every await is an interleaving point chosen by
hypothesis, and the fake's commit log, replayed against a model, must be
exactly round robin.  Over SQLite the two allocators run in two threads with
a store each on one file (SQLite's own locking between them)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

import netaddr
import pytest
from fake_address_book import Event, FakePoolStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_helpers import allocated, free_ranges

from pynetdrv.errors import Conflict, InvalidParameter, PynetdrvError, Unavailable
from pynetdrv.ipam.allocator import MAX_ATTEMPTS, Allocator, range_bounds
from pynetdrv.ipam.records import MOVED, AllocationKind, CursorUpdate, PoolRecord, Reservation
from pynetdrv.store.sqlite import SQLiteStore

POOLS = [
    PoolRecord("p", "local", "10.9.0.0/28"),
    PoolRecord("p", "local", "10.9.0.0/28", "10.9.0.4/30"),
    PoolRecord("p", "local", "10.9.0.0/30"),
    PoolRecord("p", "local", "fd00::/124", "fd00::8/125"),
]
op = st.one_of(
    st.tuples(st.just("auto"), st.just(0)),
    st.tuples(st.just("static"), st.integers(0, 15)),
    st.tuples(st.just("release"), st.integers(0, 15)),
)


async def _run(alloc: Allocator, pool: PoolRecord, ops: list[tuple[str, int]], got: list[str]) -> None:
    base = int(netaddr.IPNetwork(pool.cidr).first)
    version = netaddr.IPNetwork(pool.cidr).version
    for kind, i in ops:
        ip = str(netaddr.IPAddress(base + i, version))
        try:
            if kind == "auto":
                got.append(await alloc.reserve(pool.pool_id, None, "dynamic"))
            elif kind == "static":
                got.append(await alloc.reserve(pool.pool_id, ip, "static"))
            else:
                await alloc.release(pool.pool_id, ip)
        except (Unavailable, Conflict, InvalidParameter):
            pass


def replay(pool: PoolRecord, log: list[Event]) -> set[int]:
    """Check the commit log against the rules: every automatic address is the
    first free one at or after the cursor (wrapping), nothing is taken twice.
    Returns the addresses held at the end."""
    lo, hi = range_bounds(pool)
    cursor, held = lo, set[int]()
    for e in log:
        if e.what == "release":
            assert e.addr in held, f"released {e.addr}, which was not held"
            held.remove(e.addr)
            continue
        assert e.addr not in held, f"{e.addr} handed out twice"
        if e.cursor is not None:
            free = [a for a in range(cursor, hi + 1) if a not in held] or [
                a for a in range(lo, cursor) if a not in held
            ]
            assert free and e.addr == free[0], f"automatic {e.addr} is not the next after cursor {cursor}: {free[:3]}"
            cursor = e.addr + 1 if e.addr < hi else lo
            assert e.cursor.new_cursor == cursor
        held.add(e.addr)
    return held


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool=st.sampled_from(POOLS), schedule=st.lists(st.integers(0, 3), min_size=1, max_size=7),
       a_ops=st.lists(op, max_size=25), b_ops=st.lists(op, max_size=25))
def test_two_allocators_racing_over_the_fake_stay_round_robin(
    pool: PoolRecord, schedule: list[int], a_ops: list[tuple[str, int]], b_ops: list[tuple[str, int]]
) -> None:
    async def run() -> None:
        store = FakePoolStore(schedule)
        await store.add_pool(pool)
        got_a: list[str] = []
        got_b: list[str] = []
        await asyncio.gather(_run(Allocator(store), pool, a_ops, got_a), _run(Allocator(store), pool, b_ops, got_b))
        held = replay(pool, store.log)
        assert {int(netaddr.IPAddress(a.address)) for a in await store.allocations("p")} == held

    asyncio.run(run())


async def test_a_lost_race_is_retried_with_fresh_numbers() -> None:
    """Both read version 1 and find the same address; one wins, the other's
    compare-and-swap fails and it takes the next address."""
    store = FakePoolStore([1])
    await store.add_pool(PoolRecord("p", "local", "10.9.0.0/28"))
    got = await asyncio.gather(Allocator(store).reserve("p", None, "dynamic"),
                               Allocator(store).reserve("p", None, "dynamic"))
    assert sorted(got) == ["10.9.0.1", "10.9.0.2"]
    assert store.outcomes["reserved"] == 2 and store.outcomes["moved"] + store.outcomes["taken"] >= 1
    replay(PoolRecord("p", "local", "10.9.0.0/28"), store.log)


async def test_one_allocator_does_not_race_itself() -> None:
    """Within one allocator concurrent requests for a pool queue instead of
    burning compare-and-swap attempts on each other."""
    store = FakePoolStore([1, 2, 0])
    await store.add_pool(PoolRecord("p", "local", "10.9.0.0/24"))
    alloc = Allocator(store)
    got = await asyncio.gather(*(alloc.reserve("p", None, "dynamic") for _ in range(50)))
    assert sorted(got, key=netaddr.IPAddress) == [f"10.9.0.{i}" for i in range(1, 51)]
    assert store.outcomes == {"reserved": 50}


class _Gated(FakePoolStore):
    """The first reservation by owner "A" waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.waiting = asyncio.Event(), asyncio.Event()

    async def _reserve(self, pool_id: str, addr: int, kind: AllocationKind, owner: str,
                       cursor: CursorUpdate | None) -> Reservation:
        if owner == "A" and not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await super()._reserve(pool_id, addr, kind, owner, cursor)


async def test_a_stale_cursor_never_moves_the_cursor_back() -> None:
    """A finds .1 and stalls; B takes .1 and .2 and releases .1; A's
    reservation of .1 would succeed (it is free again) but would put the
    cursor back to .2: the compare-and-swap refuses it, and A takes .3."""
    store = _Gated()
    pool = PoolRecord("p", "local", "10.9.0.0/28")
    await store.add_pool(pool)
    a = asyncio.create_task(Allocator(store).reserve("p", None, "dynamic", owner="A"))
    await store.waiting.wait()
    b = Allocator(store)
    assert [await b.reserve("p", None, "dynamic", owner="B") for _ in range(2)] == ["10.9.0.1", "10.9.0.2"]
    assert await b.release("p", "10.9.0.1")
    store.gate.set()
    assert await a == "10.9.0.3"
    assert store.outcomes["moved"] == 1
    replay(pool, store.log)
    state = await store.pool_state("p")
    assert state is not None and state.cursor == int(netaddr.IPAddress("10.9.0.4"))


class _AlwaysMoved(FakePoolStore):
    async def _reserve(self, *args: object) -> Reservation:
        return MOVED


async def test_retries_are_bounded_and_the_error_says_why() -> None:
    store = _AlwaysMoved()
    await store.add_pool(PoolRecord("p", "local", "10.9.0.0/28"))
    with pytest.raises(Unavailable, match=rf"pool 10\.9\.0\.0/28: {MAX_ATTEMPTS} attempts in a row lost to concurrent"):
        await Allocator(store).reserve("p", None, "dynamic")
    assert store.outcomes["moved"] == MAX_ATTEMPTS and await store.allocations("p") == []


# SQLite: two stores on one file, in two threads -------------------------------------------

def _thread(db: Path, pool: PoolRecord, ops: list[tuple[str, int]], got: list[str], errors: list[BaseException],
            start: threading.Barrier) -> None:
    async def run() -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            start.wait()
            await _run(Allocator(store), pool, ops, got)
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except BaseException as e:
        errors.append(e)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool=st.sampled_from(POOLS), a_ops=st.lists(op, max_size=30), b_ops=st.lists(op, max_size=30))
def test_two_sqlite_stores_on_one_file_racing_in_threads(
    pool: PoolRecord, a_ops: list[tuple[str, int]], b_ops: list[tuple[str, int]]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "state.db"

        async def setup() -> None:
            store = SQLiteStore(db)
            await store.open()
            await store.add_pool(pool)
            await store.close()

        asyncio.run(setup())
        start = threading.Barrier(2)
        got: list[list[str]] = [[], []]
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_thread, args=(db, pool, ops, g, errors, start))
                   for ops, g in ((a_ops, got[0]), (b_ops, got[1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        held = allocated(db, "p")
        assert len(held) == len(set(held))
        free = {a for lo, hi in free_ranges(db, "p") for a in range(lo, hi + 1)}
        assert not free & set(held)
        if not any(k == "release" for k, _ in a_ops + b_ops):
            # Nothing released: every address handed out is still held, each once.
            handed = [int(netaddr.IPAddress(a)) for a in got[0] + got[1]]
            assert sorted(handed) == held


async def test_sqlite_threads_hand_out_distinct_addresses_under_contention(tmp_path: Path) -> None:
    pool = PoolRecord("p", "local", "10.9.0.0/24")
    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    await store.open()
    await store.add_pool(pool)
    await store.close()
    start = threading.Barrier(3)
    got: list[list[str]] = [[], [], []]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_thread, args=(db, pool, [("auto", 0)] * 80, g, errors, start)) for g in got]
    for t in threads:
        t.start()
    await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join(120) for t in threads])
    assert not errors, errors
    everything = got[0] + got[1] + got[2]
    assert len(everything) == 240 and len(set(everything)) == 240
    # Round robin across the three: the first 240 addresses of the range, none skipped.
    assert sorted(int(netaddr.IPAddress(a)) for a in everything) == list(range(
        int(netaddr.IPAddress("10.9.0.1")), int(netaddr.IPAddress("10.9.0.1")) + 240))
    assert not [e for e in errors if isinstance(e, PynetdrvError)]
