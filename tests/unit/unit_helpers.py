"""Helpers shared by the unit tests (imported as a plain module; the test
directory is on sys.path)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import netaddr
import pytest

from pynetdrv.api import ipam_models as m
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.open import open_snapshot
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
    """The pool's free addresses as [first, last] intervals, from the store's
    read-only snapshot of the file (a separate read, as another process would)."""
    return list(open_snapshot(db).free_ranges.get(pool_id, ()))


def allocated(db: Path, pool_id: str) -> list[int]:
    return [int(netaddr.IPAddress(a.address)) for a in open_snapshot(db).allocations.get(pool_id, ())]


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
