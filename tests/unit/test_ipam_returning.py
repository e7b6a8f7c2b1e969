"""Containers dockerd brings back after its restart get their addresses again
(ipam.returning): dockerd loads the IPAM driver, releases the stale endpoints'
addresses, then asks for any address once per returning container.

Driven through IpamService over the real SQLite store, in the order dockerd
sends the calls, with a clock the test moves."""

from __future__ import annotations

import pytest
from unit_helpers import GATEWAY_OPTS

from pynetdrv.api import ipam_models as m
from pynetdrv.config import Config
from pynetdrv.ipam.service import IpamService
from pynetdrv.returning.keep import ReturningAddresses
from pynetdrv.returning.record import Holder
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ipam(store: SQLiteStore, dp: FakeDataplane, clock: Clock) -> IpamService:
    return IpamService(store, Config(), dp.host_routes, ReturningAddresses(window=120, clock=clock))


async def pool(ipam: IpamService, cidr: str, v6: bool = False) -> str:
    resp = await ipam.request_pool(m.RequestPoolRequest(AddressSpace="local", Pool=cidr, V6=v6))
    await ipam.request_address(m.RequestAddressRequest(PoolID=resp.PoolID, Options=GATEWAY_OPTS))
    return resp.PoolID


async def any_address(ipam: IpamService, pool_id: str) -> str:
    resp = await ipam.request_address(m.RequestAddressRequest(PoolID=pool_id))
    return resp.Address.split("/")[0]


async def held_at_start(ipam: IpamService, n: int = 1) -> tuple[str, list[str]]:
    """A pool with ``n`` containers' addresses, then dockerd (re)starts."""
    p4 = await pool(ipam, "10.9.0.0/24")
    had = [await any_address(ipam, p4) for _ in range(n)]
    await ipam.capabilities(None)
    return p4, had


async def release(ipam: IpamService, pool_id: str, address: str) -> None:
    await ipam.release_address(m.ReleaseAddressRequest(PoolID=pool_id, Address=address))


async def test_after_dockerd_starts_a_returning_container_gets_its_addresses_back(ipam: IpamService) -> None:
    p4, p6 = await pool(ipam, "10.9.0.0/24"), await pool(ipam, "fd09::/64", v6=True)
    others = [await any_address(ipam, p4) for _ in range(3)]
    mine = (await any_address(ipam, p4), await any_address(ipam, p6))
    await ipam.capabilities(None)  # dockerd started again
    await release(ipam, p4, mine[0])  # its clean-up of the stale endpoint
    await release(ipam, p6, mine[1])
    assert (await any_address(ipam, p4), await any_address(ipam, p6)) == mine
    assert mine[0] not in others


async def test_without_a_dockerd_start_release_and_request_go_round_robin(ipam: IpamService) -> None:
    p4 = await pool(ipam, "10.9.0.0/24")
    a = await any_address(ipam, p4)
    await release(ipam, p4, a)
    assert await any_address(ipam, p4) != a


async def test_of_several_returning_containers_none_gets_another_ones_address(ipam: IpamService) -> None:
    """Docker starts them in parallel and does not say which one asks: handing their addresses
    round would let whoever reached one container reach another."""
    p4, had = await held_at_start(ipam, 3)
    for a in had:
        await release(ipam, p4, a)
    assert ipam.returning.kept(p4) == had
    assert [await any_address(ipam, p4) for _ in range(3)] == ["10.9.0.5", "10.9.0.6", "10.9.0.7"]


async def test_containers_without_a_restart_policy_do_not_count(ipam: IpamService) -> None:
    """One --restart always container among plain ones (as the record says, from Docker): it is
    the only one coming back, so it gets its address."""
    p4 = await pool(ipam, "10.9.0.0/24")
    plain1, mine, plain2, unknown_stopped = [await any_address(ipam, p4) for _ in range(4)]
    ipam.returning.holders = {plain1: Holder("c1", "web1", "no"), mine: Holder("c2", "db", "always"),
                              plain2: Holder("c3", "web2", "")}
    await ipam.capabilities(None)
    for a in (plain1, plain2, mine):
        await release(ipam, p4, a)
    assert ipam.returning.kept(p4) == [mine]
    assert await any_address(ipam, p4) == mine
    assert unknown_stopped != mine


async def test_an_address_docker_has_not_told_us_about_counts_as_returning(ipam: IpamService) -> None:
    """A container started just before the crash, before the watch read Docker: unknown, so it
    may come back; with a known returning one beside it, neither is sure, and both get new ones."""
    p4 = await pool(ipam, "10.9.0.0/24")
    mine, unknown = await any_address(ipam, p4), await any_address(ipam, p4)
    ipam.returning.holders = {mine: Holder("c2", "db", "unless-stopped")}
    await ipam.capabilities(None)
    await release(ipam, p4, mine)
    await release(ipam, p4, unknown)
    assert ipam.returning.kept(p4) == [mine, unknown]
    assert await any_address(ipam, p4) not in (mine, unknown)


async def test_releases_long_after_dockerd_started_are_not_kept(ipam: IpamService, clock: Clock) -> None:
    p4, [a] = await held_at_start(ipam)
    clock.now += 121
    await release(ipam, p4, a)
    assert await any_address(ipam, p4) != a


async def test_a_kept_address_waits_only_the_window(ipam: IpamService, clock: Clock) -> None:
    p4, [a] = await held_at_start(ipam)
    clock.now += 100
    await release(ipam, p4, a)
    clock.now += 110  # 210 s after the start, 110 s after the release: still kept
    assert ipam.returning.kept(p4) == [a]
    clock.now += 11
    assert ipam.returning.kept(p4) == []
    assert await any_address(ipam, p4) != a


async def test_an_address_of_a_container_that_came_and_went_since_the_start_is_not_kept(ipam: IpamService) -> None:
    p4 = await pool(ipam, "10.9.0.0/24")
    await ipam.capabilities(None)
    a = await any_address(ipam, p4)
    await release(ipam, p4, a)
    assert ipam.returning.kept(p4) == []
    assert await any_address(ipam, p4) != a


async def test_static_addresses_and_gateways_are_never_offered(ipam: IpamService) -> None:
    """A container with --ip asks for its address by itself; giving it to another container first
    would make that one fail to start."""
    p4 = await pool(ipam, "10.9.0.0/24")
    await ipam.request_address(m.RequestAddressRequest(PoolID=p4, Address="10.9.0.77"))
    assert await any_address(ipam, p4) == "10.9.0.2"
    await ipam.capabilities(None)
    await release(ipam, p4, "10.9.0.77")
    await release(ipam, p4, "10.9.0.1")  # the gateway (network delete)
    assert ipam.returning.kept(p4) == []
    assert await any_address(ipam, p4) == "10.9.0.3"


async def test_a_kept_address_taken_meanwhile_is_skipped(ipam: IpamService) -> None:
    p4 = await pool(ipam, "10.9.0.0/24")
    a, b = await any_address(ipam, p4), await any_address(ipam, p4)
    await ipam.capabilities(None)
    await release(ipam, p4, a)
    await release(ipam, p4, b)
    await ipam.request_address(m.RequestAddressRequest(PoolID=p4, Address=a))  # --ip a, before a returns
    assert await any_address(ipam, p4) == b
    assert ipam.returning.kept(p4) == []


async def test_a_released_pool_forgets_its_kept_addresses(ipam: IpamService) -> None:
    p4, [a] = await held_at_start(ipam)
    await release(ipam, p4, a)
    await ipam.release_pool(m.PoolRef(PoolID=p4))
    assert ipam.returning.kept(p4) == []
    p4 = await pool(ipam, "10.9.0.0/24")
    assert await any_address(ipam, p4) == "10.9.0.2"


async def test_release_of_an_unknown_or_malformed_address_stays_idempotent(ipam: IpamService) -> None:
    p4 = await pool(ipam, "10.9.0.0/24")
    await ipam.capabilities(None)
    await release(ipam, p4, "10.9.0.200")  # never held
    await release(ipam, "local/10.99.0.0/24", "10.99.0.5")  # unknown pool
    assert ipam.returning.kept(p4) == []
    with pytest.raises(Exception, match="address"):
        await release(ipam, p4, "not-an-ip")
