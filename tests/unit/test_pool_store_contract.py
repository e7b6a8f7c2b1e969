"""The allocation primitive's contract (``ipam.pool_store``), and the
allocator's rules over it, run against every implementation: the in-test fake
and the SQLite store (the etcd store joins the ``IMPLS`` list).

The primitive is what a store must get right for allocation to be correct
across processes: ``reserve`` takes an address only if free and moves the
cursor only if the pool's version is the one read, and changes nothing
otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import netaddr
import pytest
from fake_address_book import FakePoolStore

from pynetdrv.errors import Conflict, InvalidParameter, NotFound, Unavailable
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.ipam.pool_store import PoolStore
from pynetdrv.ipam.records import CursorUpdate, PoolRecord
from pynetdrv.store.sqlite import SQLiteStore

IMPLS = ["fake", "sqlite"]


@pytest.fixture(params=IMPLS)
async def book(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PoolStore]:
    if request.param == "fake":
        yield FakePoolStore()
        return
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def n(ip: str) -> int:
    return int(netaddr.IPAddress(ip))


# The primitive -------------------------------------------------------------------------

async def test_new_pool_is_at_version_1_with_the_cursor_at_the_start_of_its_range(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/24", "10.8.0.64/26"))
    state = await book.pool_state("p")
    assert state is not None
    assert (state.pool.cidr, state.pool.subpool, state.cursor, state.version) == (
        "10.8.0.0/24", "10.8.0.64/26", n("10.8.0.64"), 1)
    assert await book.pool_state("nope") is None


async def test_first_free_is_the_smallest_free_address_in_the_bounds(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    assert await book.first_free("p", n("10.8.0.1"), n("10.8.0.6")) == n("10.8.0.1")
    for ip in ("10.8.0.2", "10.8.0.3", "10.8.0.5"):
        assert (await book.reserve("p", n(ip), "static")).outcome == "reserved"
    assert await book.first_free("p", n("10.8.0.2"), n("10.8.0.6")) == n("10.8.0.4")
    assert await book.first_free("p", n("10.8.0.5"), n("10.8.0.6")) == n("10.8.0.6")
    assert await book.first_free("p", n("10.8.0.2"), n("10.8.0.3")) is None
    assert await book.first_free("p", n("10.8.0.4"), n("10.8.0.3")) is None
    assert await book.first_free("nope", n("10.8.0.1"), n("10.8.0.6")) is None


async def test_first_free_in_a_slash_64_does_not_enumerate(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "fd00:8::/64"))
    top = n("fd00:8::ffff:ffff:ffff:ffff")
    assert (await book.reserve("p", top - 1, "static")).outcome == "reserved"
    assert await book.first_free("p", top - 1, top) == top
    assert await book.first_free("p", top - 1, top - 1) is None


async def test_reserve_takes_a_free_address_once_and_names_the_holder(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    assert (await book.reserve("p", n("10.8.0.1"), "gateway", "gw")).outcome == "reserved"
    again = await book.reserve("p", n("10.8.0.1"), "static")
    assert (again.outcome, again.held_by) == ("taken", "gateway")
    assert (await book.reserve("nope", n("10.8.0.2"), "static")).outcome == "no_pool"
    assert [(a.address, a.kind, a.owner) for a in await book.allocations("p")] == [("10.8.0.1", "gateway", "gw")]


async def test_reserve_with_cursor_is_compare_and_swap(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    ok = await book.reserve("p", n("10.8.0.1"), "dynamic", cursor=CursorUpdate(1, n("10.8.0.2")))
    assert ok.outcome == "reserved"
    state = await book.pool_state("p")
    assert state is not None and (state.cursor, state.version) == (n("10.8.0.2"), 2)
    # A stale version: nothing changes, not even the address.
    stale = await book.reserve("p", n("10.8.0.2"), "dynamic", cursor=CursorUpdate(1, n("10.8.0.3")))
    assert stale.outcome == "moved"
    assert await book.first_free("p", n("10.8.0.2"), n("10.8.0.2")) == n("10.8.0.2")
    # Taken: the cursor does not move.
    taken = await book.reserve("p", n("10.8.0.1"), "dynamic", cursor=CursorUpdate(2, n("10.8.0.5")))
    assert taken.outcome == "taken"
    state = await book.pool_state("p")
    assert state is not None and (state.cursor, state.version) == (n("10.8.0.2"), 2)
    assert [a.address for a in await book.allocations("p")] == ["10.8.0.1"]


async def test_static_reserve_leaves_the_version_alone(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    assert (await book.reserve("p", n("10.8.0.4"), "static")).outcome == "reserved"
    state = await book.pool_state("p")
    assert state is not None and (state.cursor, state.version) == (n("10.8.0.1"), 1)


async def test_release_frees_once_and_is_idempotent(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    for ip in ("10.8.0.1", "10.8.0.2", "10.8.0.3"):
        await book.reserve("p", n(ip), "static")
    assert await book.release("p", n("10.8.0.2"), 6) is False  # other family
    assert await book.release("p", n("10.8.0.2"), 4) is True
    state = await book.pool_state("p")
    assert state is not None and state.version == 2  # a release can change the next automatic choice
    assert await book.release("p", n("10.8.0.2"), 4) is False
    state = await book.pool_state("p")
    assert state is not None and state.version == 2
    assert await book.release("nope", n("10.8.0.2"), 4) is False
    assert await book.first_free("p", n("10.8.0.1"), n("10.8.0.6")) == n("10.8.0.2")
    assert [a.address for a in await book.allocations("p")] == ["10.8.0.1", "10.8.0.3"]


async def test_deleted_pool_takes_its_allocations_along(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    await book.reserve("p", n("10.8.0.1"), "static")
    assert await book.delete_pool("p") is True
    assert await book.delete_pool("p") is False
    assert await book.pool_state("p") is None and await book.allocations("p") == []
    assert (await book.reserve("p", n("10.8.0.2"), "static")).outcome == "no_pool"
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    assert await book.allocations("p") == []


async def test_overlapping_pool_is_refused_naming_the_other(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/24"))
    with pytest.raises(Conflict, match=r"10\.8\.0\.128/25 overlaps pool 10\.8\.0\.0/24"):
        await book.add_pool(PoolRecord("q", "local", "10.8.0.128/25"))


# The allocator's rules, over each implementation ---------------------------------------

async def test_round_robin_reuses_a_released_address_only_after_the_rest(book: PoolStore) -> None:
    alloc = Allocator(book)
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/29"))
    got = [await alloc.reserve("p", None, "dynamic") for _ in range(3)]
    assert got == ["10.8.0.1", "10.8.0.2", "10.8.0.3"]
    assert await alloc.release("p", "10.8.0.2") is True
    assert [await alloc.reserve("p", None, "dynamic") for _ in range(4)] == [
        "10.8.0.4", "10.8.0.5", "10.8.0.6", "10.8.0.2"]
    with pytest.raises(Unavailable, match=r"^no free address left in pool 10\.8\.0\.0/29$"):
        await alloc.reserve("p", None, "dynamic")
    state = await book.pool_state("p")
    assert state is not None and state.version == 9  # one per automatic reservation and release


async def test_gateway_is_the_first_usable_else_the_next_free(book: PoolStore) -> None:
    alloc = Allocator(book)
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/24"))
    await book.add_pool(PoolRecord("q", "local", "10.9.0.0/24"))
    assert await alloc.request("p", None, gateway=True) == "10.8.0.1/24"
    assert await alloc.request("q", "10.9.0.1", gateway=False) == "10.9.0.1/24"
    assert await alloc.request("q", None, gateway=True) == "10.9.0.2/24"
    assert [(a.address, a.kind) for a in await book.allocations("q")] == [
        ("10.9.0.1", "static"), ("10.9.0.2", "gateway")]


async def test_static_addresses_and_their_errors(book: PoolStore) -> None:
    alloc = Allocator(book)
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/24"))
    assert await alloc.reserve("p", "10.8.0.77", "static") == "10.8.0.77"
    with pytest.raises(Conflict, match=r"^address 10\.8\.0\.77 is already in use in pool 10\.8\.0\.0/24 "
                                       r"\(by a static address\)$"):
        await alloc.reserve("p", "10.8.0.77", "static")
    with pytest.raises(InvalidParameter, match=r"^address 10\.8\.1\.1 is outside pool 10\.8\.0\.0/24$"):
        await alloc.reserve("p", "10.8.1.1", "static")
    with pytest.raises(InvalidParameter, match=r"^address fd00::1 is outside pool"):
        await alloc.reserve("p", "fd00::1", "static")
    with pytest.raises(InvalidParameter, match=r"^address 10\.8\.0\.255 is the network or broadcast address"):
        await alloc.reserve("p", "10.8.0.255", "static")
    with pytest.raises(InvalidParameter, match=r"'10\.8\.0\.x' is not a valid IP address"):
        await alloc.reserve("p", "10.8.0.x", "static")
    assert [a.address for a in await book.allocations("p")] == ["10.8.0.77"]


async def test_ip_range_bounds_automatic_addresses_only(book: PoolStore) -> None:
    alloc = Allocator(book)
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/24", "10.8.0.8/30"))
    assert await alloc.request("p", None, gateway=True) == "10.8.0.1/24"  # the gateway is outside the range
    assert await alloc.reserve("p", "10.8.0.200", "static") == "10.8.0.200"
    assert [await alloc.reserve("p", None, "dynamic") for _ in range(4)] == [
        "10.8.0.8", "10.8.0.9", "10.8.0.10", "10.8.0.11"]
    with pytest.raises(Unavailable, match=r"^no free address left in range 10\.8\.0\.8/30 of pool 10\.8\.0\.0/24$"):
        await alloc.reserve("p", None, "dynamic")


async def test_unknown_pool_is_not_found_and_its_release_is_nothing_to_do(book: PoolStore) -> None:
    alloc = Allocator(book)
    for call in (alloc.reserve("nope", None, "dynamic"), alloc.reserve("nope", "10.0.0.1", "static"),
                 alloc.request("nope", None, gateway=True)):
        with pytest.raises(NotFound, match=r"^unknown pool nope: it was never requested or has been released$"):
            await call
    assert await alloc.release("nope", "10.0.0.1") is False
    assert await alloc.release("nope", "garbage") is False


async def test_release_of_garbage_in_a_known_pool_is_invalid(book: PoolStore) -> None:
    await book.add_pool(PoolRecord("p", "local", "10.8.0.0/24"))
    with pytest.raises(InvalidParameter, match="'garbage' is not a valid IP address"):
        await Allocator(book).release("p", "garbage")


async def test_slash_64_dynamic_continues_after_a_static_near_the_end(book: PoolStore) -> None:
    alloc = Allocator(book)
    await book.add_pool(PoolRecord("p", "local", "fd00:8::/64"))
    assert await alloc.reserve("p", "fd00:8::ffff:ffff:ffff:fffe", "static") == "fd00:8::ffff:ffff:ffff:fffe"
    assert [await alloc.reserve("p", None, "dynamic") for _ in range(2)] == ["fd00:8::1", "fd00:8::2"]
    assert await alloc.request("p", None, gateway=False) == "fd00:8::3/64"


async def test_ipv6_pool_of_small_numbers_keeps_its_key_width(book: PoolStore) -> None:
    """An IPv6 pool whose addresses are below 2**32 (inside ::/96) next to an
    IPv4 pool of the same numbers: each answers for itself."""
    await book.add_pool(PoolRecord("v6", "local", "::a08:0/120"))
    await book.add_pool(PoolRecord("v4", "local", "10.8.0.0/24"))
    assert (await book.reserve("v6", n("::a08:1"), "static")).outcome == "reserved"
    assert await book.first_free("v6", n("::a08:1"), n("::a08:ff")) == n("::a08:2")
    assert await book.first_free("v4", n("10.8.0.1"), n("10.8.0.254")) == n("10.8.0.1")
    assert await book.release("v6", n("::a08:1"), 4) is False
    assert await book.release("v6", n("::a08:1"), 6) is True
