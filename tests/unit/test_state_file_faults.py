"""A store that cannot write (disk full) under the NetworkService, with the
fake data plane: each write call fails with the store's error and leaves
the links exactly as they were.  (The real thing, a full tmpfs and a
read-only ext4 under the real store and netlink, is in
tests/netns/test_state_disk_full.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from driver_requests import EID, EID2, NID, create_req, ep_req, ref

from pynetdrv.api import network_models as nm
from pynetdrv.driver.service import NetworkService
from pynetdrv.errors import Internal
from pynetdrv.store.base import EndpointRecord, NetworkRecord
from pynetdrv.store.sqlite import SQLiteStore, describe_error
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

FULL = "state file /x/state.db: database or disk is full (SQLITE_FULL: ...)"


class DiskFullStore(SQLiteStore):
    """The real store, whose writes fail while ``full`` is set (the Store
    protocol is the seam; reads still work, as on a full disk)."""

    full = False

    def _fail(self) -> None:
        if self.full:
            raise Internal(FULL)

    async def put_network(self, network: NetworkRecord, expected_version: int) -> int:
        self._fail()
        return await super().put_network(network, expected_version)

    async def delete_network(self, network_id: str) -> bool:
        self._fail()
        return await super().delete_network(network_id)

    async def put_endpoint(self, endpoint: EndpointRecord) -> None:
        self._fail()
        await super().put_endpoint(endpoint)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        self._fail()
        return await super().delete_endpoint(endpoint_id)


@pytest.fixture
async def full_store(tmp_path: Path) -> DiskFullStore:
    s = DiskFullStore(tmp_path / "state.db")
    await s.open()
    yield s  # type: ignore[misc]
    await s.close()


async def test_delete_network_that_cannot_be_forgotten_puts_its_links_back(full_store: DiskFullStore) -> None:
    dp = FakeDataplane()
    svc = NetworkService(full_store, dp, FakeFirewall(), FakeReserver())
    await svc.create_network(create_req())
    await svc.create_endpoint(ep_req())
    links_before = {name: link.spec for name, link in dp.links.items()}
    full_store.full = True
    with pytest.raises(Internal, match="full"):
        await svc.delete_network(nm.NetworkRef(NetworkID=NID))
    assert {name: link.spec for name, link in dp.links.items()} == links_before
    assert await full_store.get_network(NID) is not None
    full_store.full = False
    await svc.delete_network(nm.NetworkRef(NetworkID=NID))
    assert dp.links == {} and await full_store.get_network(NID) is None


async def test_create_calls_on_a_full_store_leave_no_link(full_store: DiskFullStore) -> None:
    dp = FakeDataplane()
    svc = NetworkService(full_store, dp, FakeFirewall(), FakeReserver())
    await svc.create_network(create_req())
    await svc.create_endpoint(ep_req())
    full_store.full = True
    links_before = set(dp.links)
    with pytest.raises(Internal):
        await svc.create_network(create_req(nid="ee" * 32, v4=[("10.228.9.0/24", "10.228.9.1/24")]))
    with pytest.raises(Internal):
        await svc.create_endpoint(ep_req(eid=EID2, address="10.1.0.3/16"))
    with pytest.raises(Internal):
        await svc.delete_endpoint(ref())
    assert set(dp.links) == links_before
    assert await full_store.get_endpoint(EID) is not None and await full_store.get_endpoint(EID2) is None


def test_describe_error_names_the_file_and_the_disk_problem() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("PRAGMA max_page_count = 1")
        with pytest.raises(sqlite3.OperationalError) as e:
            conn.execute("CREATE TABLE t (x)")
    finally:
        conn.close()
    msg = describe_error("/var/lib/pynetdrv/state.db", e.value)
    assert msg.startswith("state file /var/lib/pynetdrv/state.db: database or disk is full")
    assert "SQLITE_FULL: the file system holding it is full" in msg
    assert "not changed" in msg
