"""Helpers shared by the unit tests (imported as a plain module; the test
directory is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import netaddr
import pytest

from pynetdrv.api import ipam_models as m
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.open import open_snapshot
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
