"""SQLite schema and migrations (``PRAGMA user_version`` is the schema version)."""

from __future__ import annotations

import sqlite3

# Addresses are fixed-width big-endian BLOBs (see ipam.addresses.to_key), so
# ORDER BY and range comparisons are numeric and IPv6 fits.
#
# free_ranges is the allocator's index: the pool's free addresses as disjoint
# [start, end] intervals.  Finding the next free address after the cursor, or
# checking one address, is one index probe however full or large the pool is
# (a filled /16 or a /64), instead of a scan over allocations.
_V1 = """
CREATE TABLE pools (
    pool_id       TEXT PRIMARY KEY,
    address_space TEXT NOT NULL,
    cidr          TEXT NOT NULL,
    subpool       TEXT,
    family        INTEGER NOT NULL,
    first         BLOB NOT NULL,
    last          BLOB NOT NULL,
    cursor        BLOB NOT NULL,
    automatic     INTEGER NOT NULL,
    options       TEXT NOT NULL,
    created       REAL NOT NULL
);
CREATE INDEX pools_by_range ON pools (family, first, last);

CREATE TABLE allocations (
    pool_id  TEXT NOT NULL REFERENCES pools (pool_id) ON DELETE CASCADE,
    addr     BLOB NOT NULL,
    kind     TEXT NOT NULL,
    owner    TEXT NOT NULL,
    created  REAL NOT NULL,
    PRIMARY KEY (pool_id, addr)
) WITHOUT ROWID;

CREATE TABLE free_ranges (
    pool_id  TEXT NOT NULL REFERENCES pools (pool_id) ON DELETE CASCADE,
    start    BLOB NOT NULL,
    "end"    BLOB NOT NULL,
    PRIMARY KEY (pool_id, start)
) WITHOUT ROWID;
CREATE UNIQUE INDEX free_ranges_by_end ON free_ranges (pool_id, "end");

CREATE TABLE networks (
    network_id TEXT PRIMARY KEY,
    bridge     TEXT NOT NULL UNIQUE,
    data       TEXT NOT NULL,
    created    REAL NOT NULL
);

CREATE TABLE endpoints (
    endpoint_id TEXT PRIMARY KEY,
    network_id  TEXT NOT NULL REFERENCES networks (network_id) ON DELETE CASCADE,
    data        TEXT NOT NULL,
    created     REAL NOT NULL
);
CREATE INDEX endpoints_by_network ON endpoints (network_id);
"""

# Version 2: a version on each shareable record (pools, networks), for
# compare-and-swap updates; every cursor move of a pool increments its version.
# Existing rows start at version 1.
_V2 = """
ALTER TABLE pools ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE networks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
"""

MIGRATIONS = [_V1, _V2]


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this file has beyond the database's version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"state database schema version {version} is newer than this pynetdrv "
            f"understands ({len(MIGRATIONS)}); upgrade pynetdrv"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
