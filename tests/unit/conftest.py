"""Shared fixtures for the unit tests: the real SQLite store (in memory), the
FakeDataplane at the kernel seam, the two services on top of them, and an
in-process HTTP client of the plugin's app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from http_helpers import Client

from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.server import build_app
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver


@asynccontextmanager
async def _opened(path: str | Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def store() -> AsyncIterator[SQLiteStore]:
    async with _opened(":memory:") as s:
        yield s


@pytest.fixture
async def file_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with _opened(tmp_path / "state.db") as s:
        yield s


@pytest.fixture
def dp() -> FakeDataplane:
    return FakeDataplane()


@pytest.fixture
def config() -> Config:
    return Config()


@pytest.fixture
def ipam(store: SQLiteStore, dp: FakeDataplane, config: Config) -> IpamService:
    return IpamService(store, config, dp.host_routes)


@pytest.fixture
def net(store: SQLiteStore, dp: FakeDataplane) -> NetworkService:
    return NetworkService(store, dp, FakeFirewall(), FakeReserver())


@pytest.fixture
async def client(store: SQLiteStore, dp: FakeDataplane, config: Config) -> AsyncIterator[Client]:
    """The plugin's app (build_app), served in-process over TCP."""
    async with TestClient(TestServer(build_app(store, dp, config, FakeFirewall(), FakeReserver()))) as c:
        yield c


# The `pynetdrv check` tests' world and fake Engine API (check_world.py).
from check_world import engine, world  # noqa: E402, F401 (fixtures, registered by import)
