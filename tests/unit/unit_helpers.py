"""Helpers shared by the unit tests (imported as a plain module; the test
directory is on sys.path)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pynetdrv.api import ipam_models as m
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore

#: /work/shared/reference, found relative to this file (tests/unit/ -> repo -> work).
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
RECORDINGS = ("docker-20.10-calls.jsonl", "docker-26.1-calls.jsonl", "docker-20.10-daemon-restart.jsonl")

GATEWAY_OPTS = {"RequestAddressType": "com.docker.network.gateway"}


def load_recording(name: str) -> list[dict[str, Any]]:
    """Every line of a recorded trace, steps included; fails loudly if the
    reference material is missing rather than silently testing nothing."""
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"recorded Docker trace {path} is missing (expected /work/shared/reference)", pytrace=False)
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not any("call" in line for line in lines):
        pytest.fail(f"recorded Docker trace {path} holds no calls", pytrace=False)
    return lines


def free_ranges(db: Path, pool_id: str) -> list[tuple[int, int]]:
    """The allocator's free-range table for one pool, read with a separate
    connection (decoding the big-endian address BLOBs ourselves)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            'SELECT start, "end" FROM free_ranges WHERE pool_id = ? ORDER BY start', (pool_id,)
        ).fetchall()
    conn.close()
    return [(int.from_bytes(a, "big"), int.from_bytes(b, "big")) for a, b in rows]


def allocated(db: Path, pool_id: str) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT addr FROM allocations WHERE pool_id = ? ORDER BY addr", (pool_id,)).fetchall()
    conn.close()
    return [int.from_bytes(a, "big") for (a,) in rows]


# IPAM calls by pool and address, for the allocator tests.

async def new_pool(ipam: IpamService, cidr: str, subpool: str = "") -> str:
    return (await ipam.request_pool(m.RequestPoolRequest(AddressSpace="local", Pool=cidr, SubPool=subpool))).PoolID


async def ask(ipam: IpamService, pool_id: str, address: str = "", gateway: bool = False) -> str:
    req = m.RequestAddressRequest(PoolID=pool_id, Address=address, Options=GATEWAY_OPTS if gateway else None)
    return (await ipam.request_address(req)).Address


async def give_back(ipam: IpamService, pool_id: str, address: str) -> None:
    await ipam.release_address(m.ReleaseAddressRequest(PoolID=pool_id, Address=address))


async def held(store: SQLiteStore, pool_id: str) -> list[tuple[str, str]]:
    return [(a.address, a.kind) for a in await store.allocations(pool_id)]
