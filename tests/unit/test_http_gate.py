"""The adapter's start-up gate (api.routes.Gate) over real aiohttp: the early
route answers while the gate is closed, every other call waits at it and
then runs through the route table it is opened with, or gets a 503 naming
why start-up failed.  The daemon wiring of the same gate is in test_serve."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from http_helpers import post

from pynetdrv.api.plugin import ACTIVATE, PATHS, plugin_routes
from pynetdrv.api.routes import MAX_BODY, Gate, Route, add_routes
from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

#: Long enough for a call that does not wait at the gate to have been answered many times over.
SETTLE = 0.3


def _gated_app(gate: Gate) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    add_routes(app, PATHS, gate, early=[ACTIVATE])
    return app


def _routes(store: SQLiteStore) -> list[Route]:
    dp = FakeDataplane()
    return plugin_routes(NetworkService(store, dp, FakeFirewall(), FakeReserver()),
                         IpamService(store, Config(), dp.host_routes))


def test_paths_are_exactly_the_paths_of_the_route_table(store: SQLiteStore) -> None:
    assert [r.path for r in _routes(store)] == list(PATHS)
    assert len(set(PATHS)) == len(PATHS)


async def test_activate_answers_while_the_gate_is_closed(store: SQLiteStore) -> None:
    gate = Gate()
    async with TestClient(TestServer(_gated_app(gate))) as c:
        status, body = await asyncio.wait_for(post(c, "/Plugin.Activate"), 10)
        assert (status, body) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        assert not gate.is_open


async def test_calls_wait_at_the_closed_gate_then_succeed_when_it_opens(store: SQLiteStore) -> None:
    gate = Gate()
    async with TestClient(TestServer(_gated_app(gate))) as c:
        pool = asyncio.create_task(post(c, "/IpamDriver.RequestPool", {"Pool": "10.9.0.0/24"}))
        caps = asyncio.create_task(post(c, "/NetworkDriver.GetCapabilities"))
        await asyncio.sleep(SETTLE)
        assert not pool.done() and not caps.done(), "a call was answered before the daemon was ready"
        assert await store.list_pools() == [], "RequestPool ran before the gate opened"
        gate.open(_routes(store))
        status, body = await asyncio.wait_for(pool, 10)
        assert status == 200, body
        assert body["Pool"] == "10.9.0.0/24"
        assert await asyncio.wait_for(caps, 10) == (200, {"Scope": "local", "ConnectivityScope": "local",
                                                              "GwAllocChecker": True})
        assert [p.cidr for p in await store.list_pools()] == ["10.9.0.0/24"]


async def test_validation_behind_the_gate_is_unchanged(store: SQLiteStore) -> None:
    gate = Gate()
    gate.open(_routes(store))
    async with TestClient(TestServer(_gated_app(gate))) as c:
        status, body = await post(c, "/IpamDriver.RequestAddress", {"Address": "10.9.0.5"})
    assert status == 400
    assert "PoolID" in body["Err"]


async def test_waiting_calls_get_503_naming_a_failed_start(store: SQLiteStore) -> None:
    gate = Gate()
    async with TestClient(TestServer(_gated_app(gate))) as c:
        waiting = asyncio.create_task(post(c, "/IpamDriver.RequestPool", {"Pool": "10.9.0.0/24"}))
        await asyncio.sleep(SETTLE)
        assert not waiting.done()
        gate.fail("start-up failed: RuntimeError: netlink went away")
        status, body = await asyncio.wait_for(waiting, 10)
        assert status == 503
        assert "IpamDriver.RequestPool" in body["Err"] and "netlink went away" in body["Err"]
        # Later calls are refused the same way, at once; Activate still answers.
        status, body = await asyncio.wait_for(post(c, "/NetworkDriver.GetCapabilities"), 10)
        assert status == 503 and "netlink went away" in body["Err"]
        assert (await post(c, "/Plugin.Activate"))[0] == 200
    assert await store.list_pools() == []


async def test_unknown_paths_and_gets_are_still_404_and_405_while_closed(store: SQLiteStore) -> None:
    async with TestClient(TestServer(_gated_app(Gate()))) as c:
        status, _ = await asyncio.wait_for(post(c, "/NetworkDriver.Nonsense"), 10)
        assert status == 404
        async with c.get("/IpamDriver.RequestPool") as resp:
            assert resp.status == 405
