"""Helpers shared by the unit tests (imported as a plain module; the test
directory is on sys.path)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pynetdrv.api import ipam_models as m
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
#: The dockerd traces recorded by tools/tracer (docker-<engine>-<scenario>.jsonl), in the repo.
TRACES = REPO / "tests" / "fixtures" / "traces"
#: Every recorded trace, e.g. docker-20.10-calls.jsonl, docker-26.1-daemon-restart.jsonl.
RECORDINGS = tuple(sorted(p.name for p in TRACES.glob("docker-*.jsonl")))

GATEWAY_OPTS = {"RequestAddressType": "com.docker.network.gateway"}


def suite_engines() -> list[str]:
    """The engines the suite runs on by default: integration/engines.py's DEFAULT_ENGINES, or
    (before that module) scripts/test's ${PYNETDRV_ENGINES:-...} default."""
    engines_py = REPO / "integration" / "engines.py"
    if engines_py.is_file():
        match = re.search(r'^DEFAULT_ENGINES = "([^"]*)"', engines_py.read_text(), re.MULTILINE)
    else:
        match = re.search(r"PYNETDRV_ENGINES:-([^}]*)}", (REPO / "scripts" / "test").read_text())
    if match is None:
        pytest.fail("found no default engine list in integration/engines.py or scripts/test", pytrace=False)
    return match.group(1).replace(",", " ").split()


def load_recording(name: str) -> list[dict[str, Any]]:
    """Every line of a recorded trace, steps included; fails loudly if the
    trace is missing rather than silently testing nothing."""
    path = TRACES / name
    if not path.is_file():
        pytest.fail(f"recorded Docker trace {path} is missing (record it: tools/tracer/README.md)", pytrace=False)
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
