"""Shared fixtures for the unit tests: the real SQLite store (in memory), the
FakeDataplane at the kernel seam, and the two services on top of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pynetdrv.config import Config
from pynetdrv.dataplane.fake import FakeDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore


@pytest.fixture
async def store() -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(":memory:")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def file_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "state.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


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
