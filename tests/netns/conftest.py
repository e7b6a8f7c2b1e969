"""Root tests against the real kernel: every test gets its own throwaway
network namespace (``pndt-<hex>``), so nothing here touches the host's links
or firewall.  The namespace is removed even when the test fails; links inside
it go with it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from netns_util import throwaway_netns
from pyroute2 import AsyncIPRoute
from topology import Topology

from pynetdrv.dataplane.netlink import NetlinkDataplane

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest hook sees the whole session's items: mark only ours.
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root for network namespaces"))


@pytest.fixture
def nsname() -> Iterator[str]:
    """A fresh, empty network namespace for this test only."""
    with throwaway_netns() as name:
        yield name


@pytest_asyncio.fixture
async def dataplane(nsname: str) -> AsyncIterator[NetlinkDataplane]:
    dp = NetlinkDataplane(netns=nsname)
    try:
        yield dp
    finally:
        await dp.close()


@pytest_asyncio.fixture
async def kernel(nsname: str) -> AsyncIterator[AsyncIPRoute]:
    """An independent netlink socket in the test namespace, to set up foreign
    state and to read back what the dataplane really did."""
    ipr = AsyncIPRoute(netns=nsname)
    try:
        yield ipr
    finally:
        ipr.close()


@pytest_asyncio.fixture(params=["nft", "legacy"])
async def topology(request: pytest.FixtureRequest, nsname: str, dataplane: NetlinkDataplane,
                   kernel: AsyncIPRoute) -> AsyncIterator[Topology]:
    """Host, outside host and containers in throwaway namespaces (topology.py), with
    either iptables backend."""
    with ExitStack() as stack:
        topo = Topology(nsname, dataplane, kernel, stack, variant=request.param)
        await topo.setup()
        yield topo
