"""Shared fixtures for the unit tests: the real SQLite store (in memory), the
FakeDataplane at the kernel seam, and the two services on top of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from pynetdrv.config import Config
from pynetdrv.dataplane.fake import FakeDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore


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
    return NetworkService(store, dp)
