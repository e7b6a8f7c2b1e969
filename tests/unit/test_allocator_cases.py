"""Address allocation, case by case: the IpamService's RequestAddress/
ReleaseAddress over the SQLite store's free-range allocator -- order, gateway,
static addresses, small and IPv6 pools, sub-pools and release."""

from __future__ import annotations

import pytest
from unit_helpers import ask, give_back, held, new_pool

from pynetdrv.errors import Conflict, InvalidParameter, NotFound, Unavailable
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore

# Order, gateway, static addresses -----------------------------------------------------

async def test_cursor_order_reuses_released_address_only_after_the_rest(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.0.0.0/29")  # usable .1 - .6
    assert await ask(ipam, pid, gateway=True) == "10.0.0.1/29"
    assert [await ask(ipam, pid) for _ in range(3)] == ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29"]
    await give_back(ipam, pid, "10.0.0.3")
    assert await ask(ipam, pid) == "10.0.0.5/29"
    assert await ask(ipam, pid) == "10.0.0.6/29"
    assert await ask(ipam, pid) == "10.0.0.3/29"  # wrapped round to the released one
    with pytest.raises(Unavailable):
        await ask(ipam, pid)


async def test_static_reservation_does_not_move_the_cursor(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    assert await ask(ipam, pid, "10.0.0.100") == "10.0.0.100/24"
    assert await ask(ipam, pid) == "10.0.0.1/24"
    assert await ask(ipam, pid) == "10.0.0.2/24"


async def test_automatic_addresses_skip_static_ones(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    await ask(ipam, pid, "10.0.0.2")
    await ask(ipam, pid, "10.0.0.3")
    assert [await ask(ipam, pid) for _ in range(2)] == ["10.0.0.1/24", "10.0.0.4/24"]


async def test_gateway_gets_first_address_by_default(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "192.168.7.0/24")
    assert await ask(ipam, pid, gateway=True) == "192.168.7.1/24"
    assert await held(store, pid) == [("192.168.7.1", "gateway")]


async def test_explicit_gateway_is_honoured(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16", "10.20.5.0/24")
    assert await ask(ipam, pid, "10.20.0.254", gateway=True) == "10.20.0.254/16"
    assert await held(store, pid) == [("10.20.0.254", "gateway")]
    # The first automatic address comes from the ip-range, not .1.
    assert await ask(ipam, pid) == "10.20.5.0/16"


async def test_default_gateway_when_first_address_is_taken(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    await ask(ipam, pid, "10.0.0.1")  # an aux address got there first
    gw = await ask(ipam, pid, gateway=True)
    assert gw == "10.0.0.2/24"
    assert ("10.0.0.2", "gateway") in await held(store, pid)


async def test_aux_outside_ip_range_but_inside_pool_is_accepted(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16", "10.20.5.0/24")
    assert await ask(ipam, pid, "10.20.0.10") == "10.20.0.10/16"
    assert ("10.20.0.10", "static") in await held(store, pid)


async def test_static_outside_pool_is_refused_naming_the_pool(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    for outside in ("10.21.0.1", "fd00::1"):
        with pytest.raises(InvalidParameter, match=r"10\.20\.0\.0/16") as e:
            await ask(ipam, pid, outside)
        assert outside in str(e.value)
    assert await held(store, pid) == []


@pytest.mark.parametrize("address", ["10.20.0.0", "10.20.255.255"])
async def test_network_and_broadcast_are_refused(ipam: IpamService, store: SQLiteStore, address: str) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    with pytest.raises(InvalidParameter, match="network or broadcast") as e:
        await ask(ipam, pid, address)
    assert address in str(e.value) and "10.20.0.0/16" in str(e.value)
    assert await held(store, pid) == []


async def test_garbage_address_is_refused(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    for bad in ("10.20.0.5/16", "10.20", "not-an-ip"):
        with pytest.raises(InvalidParameter, match="not a valid IP"):
            await ask(ipam, pid, bad)


async def test_duplicate_static_is_a_conflict_and_changes_nothing(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.20.0.0/16")
    await ask(ipam, pid, gateway=True)
    await ask(ipam, pid, "10.20.3.3")
    await ask(ipam, pid)
    before = await held(store, pid)
    for dup in ("10.20.3.3", "10.20.0.1"):
        with pytest.raises(Conflict) as e:
            await ask(ipam, pid, dup)
        assert dup in str(e.value)
    with pytest.raises(Conflict, match=r"10\.20\.0\.1"):
        await ask(ipam, pid, "10.20.0.1", gateway=True)
    assert await held(store, pid) == before
    # The cursor did not move either.
    assert await ask(ipam, pid) == "10.20.0.3/16"


async def test_exhaustion_names_the_pool(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.3.3.0/30")  # .1 and .2
    await ask(ipam, pid, gateway=True)
    await ask(ipam, pid)
    with pytest.raises(Unavailable, match=r"10\.3\.3\.0/30"):
        await ask(ipam, pid)
    with pytest.raises(Unavailable, match=r"10\.3\.3\.0/30"):
        await ask(ipam, pid, gateway=True)


async def test_unknown_pool_in_store_is_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match="nope"):
        await Allocator(store).reserve("nope", None, "dynamic")
    assert await Allocator(store).release("nope", "10.0.0.1") is False
    assert await store.allocations("nope") == []


# Small and IPv6 pools -------------------------------------------------------------------

async def test_slash_31_uses_both_addresses(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.9.9.0/31")
    assert await ask(ipam, pid, gateway=True) == "10.9.9.0/31"
    assert await ask(ipam, pid) == "10.9.9.1/31"
    with pytest.raises(Unavailable):
        await ask(ipam, pid)


async def test_slash_32_has_exactly_one_address(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "10.9.9.7/32")
    assert await ask(ipam, pid) == "10.9.9.7/32"
    with pytest.raises(Unavailable):
        await ask(ipam, pid)
    await give_back(ipam, pid, "10.9.9.7")
    assert await ask(ipam, pid, "10.9.9.7") == "10.9.9.7/32"


async def test_ipv6_slash_64(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "fd00:30::/64")
    assert await ask(ipam, pid, gateway=True) == "fd00:30::1/64"
    assert await ask(ipam, pid) == "fd00:30::2/64"
    # No broadcast in IPv6: the last address is assignable; ::0 (subnet-router anycast) is not.
    assert await ask(ipam, pid, "fd00:30::ffff:ffff:ffff:ffff") == "fd00:30::ffff:ffff:ffff:ffff/64"
    with pytest.raises(InvalidParameter):
        await ask(ipam, pid, "fd00:30::")
    with pytest.raises(InvalidParameter, match="fd00:30::/64"):
        await ask(ipam, pid, "fd00:31::1")
    # Written differently, the same address is the same allocation.
    with pytest.raises(Conflict):
        await ask(ipam, pid, "FD00:30:0:0::2")
    await give_back(ipam, pid, "FD00:30::2")
    assert "fd00:30::2" not in [a for a, _ in await held(store, pid)]


async def test_ipv6_slash_127_uses_both_addresses(ipam: IpamService) -> None:
    pid = await new_pool(ipam, "fd00:1::/127")
    assert await ask(ipam, pid, gateway=True) == "fd00:1::/127"
    assert await ask(ipam, pid) == "fd00:1::1/127"
    with pytest.raises(Unavailable, match="fd00:1::/127"):
        await ask(ipam, pid)


async def test_subpool_only_constrains_automatic_addresses(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24", "10.0.0.8/30")
    assert await ask(ipam, pid, gateway=True) == "10.0.0.1/24"  # the gateway may sit outside the range
    autos = [await ask(ipam, pid) for _ in range(4)]
    assert autos == [f"10.0.0.{i}/24" for i in (8, 9, 10, 11)]
    with pytest.raises(Unavailable) as e:
        await ask(ipam, pid)
    assert "10.0.0.8/30" in str(e.value) and "10.0.0.0/24" in str(e.value)
    # By address, the whole pool is still open.
    assert await ask(ipam, pid, "10.0.0.200") == "10.0.0.200/24"
    await give_back(ipam, pid, "10.0.0.9")
    assert await ask(ipam, pid) == "10.0.0.9/24"


async def test_release_is_idempotent_and_frees(ipam: IpamService, store: SQLiteStore) -> None:
    pid = await new_pool(ipam, "10.0.0.0/24")
    await ask(ipam, pid, "10.0.0.50")
    await give_back(ipam, pid, "10.0.0.50")
    await give_back(ipam, pid, "10.0.0.50")
    await give_back(ipam, pid, "10.0.0.51")  # never allocated
    await give_back(ipam, "local/10.99.0.0/24", "10.99.0.1")  # unknown pool
    assert await held(store, pid) == []
    assert await ask(ipam, pid, "10.0.0.50") == "10.0.0.50/24"
