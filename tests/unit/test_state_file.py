"""The state file is checked before use: a corrupt, truncated, empty,
foreign or newer-schema file is refused with a message naming the file and
what is wrong, and is never written to (sha256 and directory listing
before/after).  A v1 database written before pynetdrv set its
application_id is recognised by its schema and migrated in place."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import netaddr
import pytest

from pynetdrv.errors import VersionConflict
from pynetdrv.ipam.allocator import Allocator
from pynetdrv.store.base import EndpointRecord, NetworkRecord, PoolRecord
from pynetdrv.store.sqlite import SQLiteStore
from pynetdrv.store.sqlite_file import APPLICATION_ID, StateFileError, tables_of
from pynetdrv.store.sqlite_schema import MIGRATIONS

# The schema of pynetdrv 0.x as it first shipped (user_version 1, no
# application_id), frozen here on purpose: later migrations must keep
# opening files written with exactly this DDL.
V1_DDL = """
CREATE TABLE pools (pool_id TEXT PRIMARY KEY, address_space TEXT NOT NULL, cidr TEXT NOT NULL, subpool TEXT,
    family INTEGER NOT NULL, first BLOB NOT NULL, last BLOB NOT NULL, cursor BLOB NOT NULL,
    automatic INTEGER NOT NULL, options TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX pools_by_range ON pools (family, first, last);
CREATE TABLE allocations (pool_id TEXT NOT NULL REFERENCES pools (pool_id) ON DELETE CASCADE,
    addr BLOB NOT NULL, kind TEXT NOT NULL, owner TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (pool_id, addr)) WITHOUT ROWID;
CREATE TABLE free_ranges (pool_id TEXT NOT NULL REFERENCES pools (pool_id) ON DELETE CASCADE,
    start BLOB NOT NULL, "end" BLOB NOT NULL, PRIMARY KEY (pool_id, start)) WITHOUT ROWID;
CREATE UNIQUE INDEX free_ranges_by_end ON free_ranges (pool_id, "end");
CREATE TABLE networks (network_id TEXT PRIMARY KEY, bridge TEXT NOT NULL UNIQUE, data TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE endpoints (endpoint_id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (network_id) ON DELETE CASCADE,
    data TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX endpoints_by_network ON endpoints (network_id);
"""

NET_ID = "ab" * 32
EP_ID = "cd" * 32


def v4(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


def write_v1_database(path: Path) -> None:
    """A populated v1 state file: pool 10.228.7.0/24 with the gateway .1 and
    .2 taken (cursor at .3), one network and one joined endpoint."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_DDL)
    pid = "local/10.228.7.0/24"
    conn.execute("INSERT INTO pools VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (pid, "local", "10.228.7.0/24", None, 4, v4("10.228.7.0"), v4("10.228.7.255"),
                  v4("10.228.7.3"), 0, "{}", 1.0))
    conn.execute("INSERT INTO allocations VALUES (?,?,?,?,?)", (pid, v4("10.228.7.1"), "gateway", "", 1.0))
    conn.execute("INSERT INTO allocations VALUES (?,?,?,?,?)", (pid, v4("10.228.7.2"), "dynamic", "", 1.0))
    conn.execute("INSERT INTO free_ranges VALUES (?,?,?)", (pid, v4("10.228.7.3"), v4("10.228.7.254")))
    network = {"network_id": NET_ID, "bridge": "pnbr-ababababab", "mac": "02:aa:bb:cc:dd:ee", "mtu": 1400,
               "internal": False, "gateways": ["10.228.7.1/24"], "pools": ["10.228.7.0/24"], "options": {}}
    endpoint = {"endpoint_id": EP_ID, "network_id": NET_ID, "host_ifname": "pnve-cdcdcdcdcd",
                "peer_ifname": "pnvc-cdcdcdcdcd", "mac": "02:11:22:33:44:55", "address": "10.228.7.2/24",
                "address_v6": "", "sandbox_key": "/var/run/docker/netns/x", "external": None}
    conn.execute("INSERT INTO networks VALUES (?,?,?,?)", (NET_ID, "pnbr-ababababab", json.dumps(network), 1.0))
    conn.execute("INSERT INTO endpoints VALUES (?,?,?,?)", (EP_ID, NET_ID, json.dumps(endpoint), 1.0))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """sha256 of the file and the names in its directory."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


async def open_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store


async def assert_refused(path: Path, *expected: str) -> str:
    before = fingerprint(path)
    store = SQLiteStore(path)
    with pytest.raises(StateFileError) as e:
        await store.open()
    await store.close()
    msg = str(e.value)
    assert str(path) in msg and "left unchanged" in msg, msg
    assert "\n" not in msg
    for word in expected:
        assert word in msg, msg
    assert fingerprint(path) == before, "a refused state file was modified, or files appeared next to it"
    return msg


# A populated file of the current schema, the raw material for damage ---------------------

async def current_database(path: Path, pools: int = 40) -> None:
    store = await open_store(path)
    for i in range(pools):
        await store.add_pool(PoolRecord(f"local/10.228.{i}.0/24", "local", f"10.228.{i}.0/24"))
        await Allocator(store).reserve(f"local/10.228.{i}.0/24", None, "dynamic")
    await store.close()
    assert not Path(f"{path}-wal").exists(), "a cleanly closed store leaves no WAL"


# Corrupt ----------------------------------------------------------------------------------

async def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(random.Random(4).randbytes(16384))
    await assert_refused(path, "not an SQLite database")


async def test_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("networks:\n  - app\n")
    await assert_refused(path, "not an SQLite database", "networks")


async def test_empty_file_is_refused_not_initialised(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    await assert_refused(path, "empty (0 bytes)")


@pytest.mark.parametrize("keep", [50, 100, 4096, 0.5, 0.9])
async def test_truncated_database_is_refused(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "state.db"
    await current_database(path)
    size = path.stat().st_size
    assert size > 5 * 4096
    cut = int(size * keep) if isinstance(keep, float) else keep
    os.truncate(path, cut)
    await assert_refused(path, "truncated")


async def test_garbage_inside_a_page_is_refused_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await current_database(path)
    data = bytearray(path.read_bytes())
    # Pages 2..4 hold table b-trees: overwrite them, keep the header intact.
    data[4096:4096 * 4] = random.Random(7).randbytes(4096 * 3)
    path.write_bytes(bytes(data))
    await assert_refused(path, "damaged")


# Foreign ----------------------------------------------------------------------------------

def foreign_database(path: Path, app_id: int = 0, user_version: int = 0, ddl: str = "") -> None:
    conn = sqlite3.connect(path)
    conn.executescript(ddl or "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT);"
                              "INSERT INTO moz_places (url) VALUES ('https://example.org');")
    conn.execute(f"PRAGMA application_id = {app_id}")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()


async def test_database_of_another_application_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    foreign_database(path, app_id=0x0F055112)  # Fossil's id
    await assert_refused(path, "another application", "0x0f055112")


async def test_foreign_tables_without_application_id_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    foreign_database(path)
    await assert_refused(path, "another application", "moz_places")


async def test_foreign_tables_at_a_pynetdrv_version_number_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    foreign_database(path, user_version=1)
    await assert_refused(path, "another application", "user_version 1")


async def test_pynetdrv_tables_plus_a_stranger_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    foreign_database(path, user_version=1, ddl=V1_DDL + "CREATE TABLE accounts (name TEXT);")
    await assert_refused(path, "another application", "accounts")


async def test_a_foreign_file_in_wal_mode_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    foreign_database(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StateFileError, match="another application"):
        await open_store(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert pragma(path, "user_version") == 0 and "pools" not in {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    }


# Versions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stamped", [True, False], ids=["with-application-id", "before-application-id"])
async def test_newer_schema_is_refused_unchanged(tmp_path: Path, stamped: bool) -> None:
    path = tmp_path / "state.db"
    await current_database(path, pools=2)
    newer = len(MIGRATIONS) + 1
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID if stamped else 0}")
    conn.commit()
    conn.close()
    await assert_refused(path, f"schema version {newer}", f"understands ({len(MIGRATIONS)})", "Upgrade pynetdrv")


async def test_v1_database_is_migrated_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_v1_database(path)
    assert pragma(path, "user_version") == 1 and pragma(path, "application_id") == 0
    store = await open_store(path)
    try:
        net = await store.get_network(NET_ID)
        assert net is not None and net.bridge == "pnbr-ababababab" and net.mtu == 1400
        assert net.gateways == ("10.228.7.1/24",)
        eps = await store.list_endpoints(NET_ID)
        assert [e.endpoint_id for e in eps] == [EP_ID] and eps[0].address == "10.228.7.2/24"
        pid = "local/10.228.7.0/24"
        assert [(a.address, a.kind) for a in await store.allocations(pid)] == [
            ("10.228.7.1", "gateway"), ("10.228.7.2", "dynamic")]
        # Migration 2 gave each shareable record version 1.
        state = await store.pool_state(pid)
        assert state is not None and (state.version, state.cursor) == (1, int(netaddr.IPAddress("10.228.7.3")))
        assert net.version == 1
        # The allocator index came along: the next address continues at the cursor.
        assert await Allocator(store).reserve(pid, None, "dynamic") == "10.228.7.3"
        state = await store.pool_state(pid)
        assert state is not None and state.version == 2
        # Compare-and-swap works on the migrated rows.
        with pytest.raises(VersionConflict, match=f"network {NET_ID[:12]} already exists"):
            await store.put_network(net, 0)
        assert await store.put_network(dataclasses.replace(net, mtu=1300), 1) == 2
        again = await store.get_network(NET_ID)
        assert again is not None and (again.mtu, again.version) == (1300, 2)
    finally:
        await store.close()
    assert pragma(path, "user_version") == len(MIGRATIONS)
    assert pragma(path, "application_id") == APPLICATION_ID


async def test_empty_sqlite_database_is_adopted(tmp_path: Path) -> None:
    """No tables, version 0 (e.g. a crash of an old pynetdrv right after it
    switched on WAL): nothing to lose, so it gets the schema."""
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    store = await open_store(path)
    await store.add_pool(PoolRecord("local/10.228.9.0/24", "local", "10.228.9.0/24"))
    await store.close()
    assert pragma(path, "user_version") == len(MIGRATIONS)
    assert pragma(path, "application_id") == APPLICATION_ID


def test_tables_of_each_version_grow() -> None:
    assert tables_of(0) == set()
    assert tables_of(1) == {"pools", "allocations", "free_ranges", "networks", "endpoints"}
    for v in range(1, len(MIGRATIONS)):
        assert tables_of(v) <= tables_of(v + 1)


# A new file -------------------------------------------------------------------------------

async def test_new_state_file_is_complete_private_and_stamped(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "pynetdrv" / "state.db"
    store = await open_store(path)
    await store.put_network(NetworkRecord(NET_ID, "pnbr-x", "02:00:00:00:00:01", None), 0)
    await store.put_endpoint(EndpointRecord(EP_ID, NET_ID, "pnve-1", "pnvc-1", "02:00:00:00:00:02"))
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    await store.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert pragma(path, "application_id") == APPLICATION_ID
    assert pragma(path, "user_version") == len(MIGRATIONS)
    assert sorted(os.listdir(path.parent)) == ["state.db"], "no temporary file may be left"


async def test_leftover_of_a_crashed_create_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Path(f"{path}.new").write_bytes(b"half a database")
    store = await open_store(path)
    await store.close()
    assert sorted(os.listdir(tmp_path)) == ["state.db"]
    assert pragma(path, "user_version") == len(MIGRATIONS)


@pytest.mark.parametrize(("before", "after"), [(0o644, 0o640), (0o666, 0o640), (0o640, 0o640), (0o600, 0o600)])
async def test_existing_state_file_loses_access_for_others(tmp_path: Path, before: int, after: int) -> None:
    path = tmp_path / "state.db"
    write_v1_database(path)
    os.chmod(path, before)
    store = await open_store(path)
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == after


@pytest.mark.parametrize("make", [
    lambda d: os.chmod(d, 0o777),
    lambda d: os.chmod(d, 0o1777),
], ids=["0777", "1777-sticky"])
async def test_world_writable_state_directory_is_refused(tmp_path: Path, make: Callable[[Path], None]) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    make(directory)
    store = SQLiteStore(directory / "state.db")
    with pytest.raises(StateFileError, match="writable by every user"):
        await store.open()
    await store.close()
    assert os.listdir(directory) == []
