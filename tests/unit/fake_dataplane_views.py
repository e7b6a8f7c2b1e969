"""What reached the FakeDataplane, seen by kind (bridges, veths, their MACs),
and a snapshot of it with the store: for the NetworkService unit tests."""

from __future__ import annotations

from typing import Any

import netaddr

from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane


def bridges(dp: FakeDataplane) -> dict[str, BridgeSpec]:
    return {n: link.spec for n, link in dp.links.items() if link.kind == "bridge" and isinstance(link.spec, BridgeSpec)}


def veths(dp: FakeDataplane) -> dict[str, VethSpec]:
    return {n: link.spec for n, link in dp.links.items() if link.kind == "veth" and isinstance(link.spec, VethSpec)}


def is_local_unicast(mac: str) -> bool:
    first = int(netaddr.EUI(mac).words[0])
    return first & 0x02 == 0x02 and first & 0x01 == 0


async def snapshot(store: SQLiteStore, dp: FakeDataplane) -> tuple[Any, ...]:
    return (await store.list_networks(), await store.list_endpoints(),
            {n: (link.kind, link.alias, link.spec) for n, link in dp.links.items()})
