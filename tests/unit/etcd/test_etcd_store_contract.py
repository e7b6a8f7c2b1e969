"""The pool-store contract (test_pool_store_contract) and the network version tests
(test_store_versions), run against EtcdSharedStore on this worker's real etcd, each test under its own
prefix.  The etcd fixtures live in this directory's conftest, so the etcd store joins here by
re-importing the SAME test functions with ``book``/``store`` bound to etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from etcd_server import EtcdServer
from test_pool_store_contract import *  # noqa: F403  (the contract tests, unchanged)
from test_store_versions import (  # noqa: F401
    test_bridge_name_conflict_is_not_a_version_conflict,
    test_create_of_an_existing_network_is_a_version_conflict,
    test_network_versions_start_at_1_and_count_changes,
    test_update_from_a_stale_read_is_refused_unchanged,
    test_update_of_a_deleted_network_is_refused,
)

from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.store.etcd_shared import EtcdSharedStore


async def _store(server: EtcdServer, prefix: bytes) -> AsyncIterator[EtcdSharedStore]:
    client = EtcdClient.from_url(f"etcd://{server.endpoint}", timeout=3.0)
    try:
        yield EtcdSharedStore(client, prefix)
    finally:
        await client.close()


@pytest.fixture
async def book(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[EtcdSharedStore]:
    async for s in _store(etcd_server, etcd_prefix):
        yield s


@pytest.fixture
async def store(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[EtcdSharedStore]:
    async for s in _store(etcd_server, etcd_prefix):
        yield s
