"""Versions and compare-and-swap of the shareable records (networks here;
pools in test_pool_store_contract): a change made from a stale read is
refused with an error naming the record, and changes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pynetdrv.errors import Conflict, VersionConflict
from pynetdrv.store.base import NetworkRecord
from pynetdrv.store.sqlite import SQLiteStore

NID, OTHER = "ab" * 32, "cd" * 32
NET = NetworkRecord(NID, "pnbr-one", "02:00:00:00:00:01", 1500, gateways=("10.1.0.1/24",), pools=("10.1.0.0/24",))


async def test_network_versions_start_at_1_and_count_changes(store: SQLiteStore) -> None:
    assert await store.put_network(NET, 0) == 1
    got = await store.get_network(NID)
    assert got == NET and got is not None and got.version == 1
    assert await store.put_network(dataclasses.replace(got, mtu=1400), got.version) == 2
    got = await store.get_network(NID)
    assert got is not None and (got.mtu, got.version) == (1400, 2)
    assert [n.version for n in await store.list_networks()] == [2]


async def test_create_of_an_existing_network_is_a_version_conflict(store: SQLiteStore) -> None:
    await store.put_network(NET, 0)
    with pytest.raises(VersionConflict, match=rf"^network {NID[:12]} already exists \(version 1\)"):
        await store.put_network(dataclasses.replace(NET, mtu=9000), 0)
    got = await store.get_network(NID)
    assert got is not None and (got.mtu, got.version) == (1500, 1)


async def test_update_from_a_stale_read_is_refused_unchanged(store: SQLiteStore) -> None:
    await store.put_network(NET, 0)
    first = await store.get_network(NID)
    second = await store.get_network(NID)
    assert first is not None and second is not None
    await store.put_network(dataclasses.replace(first, mtu=1400), first.version)
    with pytest.raises(VersionConflict, match=rf"^network {NID[:12]} is at version 2, not 1: it was changed"):
        await store.put_network(dataclasses.replace(second, mtu=9000), second.version)
    got = await store.get_network(NID)
    assert got is not None and (got.mtu, got.version) == (1400, 2)


async def test_update_of_a_deleted_network_is_refused(store: SQLiteStore) -> None:
    await store.put_network(NET, 0)
    assert await store.delete_network(NID) is True
    with pytest.raises(VersionConflict, match=rf"^network {NID[:12]} no longer exists \(expected version 1\)"):
        await store.put_network(NET, 1)
    assert await store.get_network(NID) is None
    assert await store.put_network(NET, 0) == 1  # created anew


async def test_bridge_name_conflict_is_not_a_version_conflict(store: SQLiteStore) -> None:
    await store.put_network(NET, 0)
    with pytest.raises(Conflict, match=f"bridge name pnbr-one is already used by network {NID[:12]}") as e:
        await store.put_network(dataclasses.replace(NET, network_id=OTHER), 0)
    assert not isinstance(e.value, VersionConflict)
    assert await store.get_network(OTHER) is None


async def test_versions_are_shared_by_two_stores_on_one_file(tmp_path: Path) -> None:
    """As two daemons (or hosts) would: the one that read first loses."""
    path = tmp_path / "state.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    await a.open()
    await b.open()
    try:
        await a.put_network(NET, 0)
        seen_a, seen_b = await a.get_network(NID), await b.get_network(NID)
        assert seen_a is not None and seen_b is not None
        assert await b.put_network(dataclasses.replace(seen_b, mtu=1400), seen_b.version) == 2
        with pytest.raises(VersionConflict, match="is at version 2, not 1"):
            await a.put_network(dataclasses.replace(seen_a, mtu=9000), seen_a.version)
    finally:
        await a.close()
        await b.close()
