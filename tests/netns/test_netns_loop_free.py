"""The event loop keeps serving while the kernel deletes a link.

The kernel handles a netlink request inside the sender's sendmsg(), and a
link delete waits there for an RCU grace period (10-20 ms): sent from the
loop's thread, nothing else would run meanwhile (DeleteEndpoint would stall
every other call).  Here a task that only yields counts how often the loop
ran it during remove_veth / remove_bridge: on the loop's thread that is a
handful of times at most (around the send), on the worker thread thousands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from counting_ipr import counting_sockets
from netns_util import link_names
from pyroute2 import AsyncIPRoute

from pynetdrv.api import network_models as nm
from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NET = "cd" * 32
BRIDGE = BridgeSpec(name="pnlbr0", network_id=NET, mac="02:42:0a:fc:00:01", mtu=None, addresses=())


def veth(i: int) -> VethSpec:
    return VethSpec(host_name=f"pnlv{i}h", peer_name=f"pnlv{i}p", bridge="pnlbr0",
                    endpoint_id=f"{i:02d}" * 32, mac=f"02:42:0a:fc:01:{i:02x}", mtu=None)


async def loop_turns_during(step: Awaitable[None]) -> int:
    turns = 0
    done = False

    async def spin() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += 1

    spinner = asyncio.create_task(spin())
    await asyncio.sleep(0)  # let it start
    start = turns
    try:
        await step
    finally:
        done = True
        await spinner
    return turns - start


async def test_the_loop_runs_while_links_are_deleted(dataplane: NetlinkDataplane, kernel: AsyncIPRoute) -> None:
    await dataplane.ensure_bridge(BRIDGE)
    for i in range(3):
        await dataplane.ensure_veth(veth(i))
    turns = [await loop_turns_during(dataplane.remove_veth(veth(i).host_name, veth(i).endpoint_id)) for i in range(3)]
    turns.append(await loop_turns_during(dataplane.remove_bridge("pnlbr0", NET)))
    assert await link_names(kernel) == {"lo"}
    assert min(turns) >= 100, turns  # measured: 5 each on the loop thread, thousands off it


async def test_pairs_made_in_a_burst_are_created_off_the_loop(nsname: str) -> None:
    """One CreateEndpoint at a time creates its pair on the loop (the thread
    hand-off would cost more than it saves); while others are being made,
    the adds go to the worker thread so the loop keeps answering."""
    on_thread: list[list[str]] = []
    loop_socket, thread_socket = counting_sockets(on_thread)
    # No burst window: what is tested here is the count of calls in flight.
    dp = NetlinkDataplane(netns=nsname, socket_factory=loop_socket, slow_socket_factory=thread_socket,
                          burst_window=0.0)
    try:
        await dp.ensure_bridge(BRIDGE)
        await dp.ensure_veth(veth(0))
        assert ["newlink"] not in on_thread  # alone: on the loop
        await asyncio.gather(*(dp.ensure_veth(veth(i)) for i in range(1, 9)))
        assert on_thread.count(["newlink"]) >= 7, on_thread  # all but maybe the last one to start
    finally:
        await dp.close()


async def test_a_burst_of_create_endpoint_on_one_network_goes_off_the_loop(nsname: str) -> None:
    """One network's CreateEndpoint calls take turns at its lock, so the
    dataplane sees a burst one call at a time: back to back, its adds still
    leave the loop; a lone one after a quiet spell stays on it."""
    on_thread: list[list[str]] = []
    loop_socket, thread_socket = counting_sockets(on_thread)
    window = 0.2
    dp = NetlinkDataplane(netns=nsname, socket_factory=loop_socket, slow_socket_factory=thread_socket,
                          burst_window=window)
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        svc = NetworkService(store, dp, FakeFirewall(), FakeReserver())
        await svc.create_network(nm.CreateNetworkRequest(
            NetworkID=NET, Options={"com.docker.network.generic": {"com.docker.network.bridge.name": "pnlbr0"}},
            IPv4Data=[nm.IPAMData(AddressSpace="local", Pool="10.252.0.0/24", Gateway="10.252.0.1/24")]))
        await asyncio.gather(*(svc.create_endpoint(endpoint_req(i)) for i in range(1, 9)))
        # The first found the dataplane quiet; all after it came back to back.
        assert on_thread.count(["newlink"]) >= 7, on_thread
        on_thread.clear()
        await asyncio.sleep(window * 1.5)
        await svc.create_endpoint(endpoint_req(9))
        assert ["newlink"] not in on_thread, on_thread
    finally:
        await dp.close()
        await store.close()


def endpoint_req(i: int) -> nm.CreateEndpointRequest:
    return nm.CreateEndpointRequest(NetworkID=NET, EndpointID=f"{i:02d}" * 32,
                                    Interface=nm.EndpointInterface(Address=f"10.252.0.{i + 10}/24"))
