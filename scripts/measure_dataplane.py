"""Netlink requests, wall and CPU time of the dataplane's veth steps (a
measurement, not a test; run as root from a checkout with its .venv):

    .venv/bin/python scripts/measure_dataplane.py [--endpoints 1000] [--new 50]

In a throwaway namespace ``pn-meas-<hex>`` (deleted at the end, also on
failure): ensure_veth of new endpoints, ensure_veth of the same healthy
endpoints again (what Join does), then reconcile over ``--endpoints``
endpoints made through the real NetworkService and SQLite store, by a fresh
dataplane as after a restart.  "sends" counts socket sends (round trips),
"msgs" the netlink messages in them.  CPU is this process's (pyroute2
encodes and decodes in-process); wall includes the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute, netns

from pynetdrv.api import network_models as m
from pynetdrv.dataplane.base import BridgeSpec, VethSpec
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.reconcile import reconcile
from pynetdrv.store.sqlite import SQLiteStore


class CountingIPRoute(AsyncIPRoute):
    """Counts sends and the netlink messages in each."""

    sends = 0
    msgs = 0

    def send(self, data: bytes, flags: int = 0) -> Any:
        type(self).sends += 1
        off = 0
        while off < len(data):
            (length,) = struct.unpack_from("I", data, off)
            type(self).msgs += 1
            off += (length + 3) & ~3
        return super().send(data, flags)


def make_dataplane(ns: str) -> NetlinkDataplane:
    try:
        return NetlinkDataplane(netns=ns, socket_factory=CountingIPRoute)
    except TypeError:  # the code before socket_factory existed: measure it too
        dp = NetlinkDataplane(netns=ns)
        dp._ipr_obj = CountingIPRoute(netns=ns)  # measurement of the old code only
        return dp


async def measured(label: str, n: int, calls: Callable[[], Awaitable[Any]]) -> None:
    CountingIPRoute.sends = CountingIPRoute.msgs = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await calls()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{label:<34} n={n:<5} sends/op {CountingIPRoute.sends / n:6.2f}  msgs/op {CountingIPRoute.msgs / n:6.2f}"
          f"  wall/op {wall / n * 1e3:8.3f} ms  cpu/op {cpu / n * 1e3:8.3f} ms  (total: {CountingIPRoute.sends} sends,"
          f" wall {wall:.2f} s, cpu {cpu:.2f} s)")


async def per_op(specs: list[VethSpec], dp: NetlinkDataplane) -> None:
    for spec in specs:
        await dp.ensure_veth(spec)


async def main(ns: str, endpoints: int, new: int, tmp: Path) -> None:
    bridge = BridgeSpec(name="pnmeasbr0", network_id="ee" * 32, mac="02:42:0a:fe:00:01", mtu=1450,
                        addresses=("10.254.0.1/24",))
    specs = [VethSpec(host_name=f"pnmh{i}", peer_name=f"pnmp{i}", bridge=bridge.name, endpoint_id=f"{i:064x}",
                      mac=f"02:42:0a:fe:01:{i % 256:02x}", mtu=1450) for i in range(new)]
    dp = make_dataplane(ns)
    await dp.ensure_bridge(bridge)
    await dp.ensure_veth(specs[0])  # warm-up (imports, first socket use)
    await dp.remove_veth(specs[0].host_name, specs[0].endpoint_id)
    await measured("ensure_veth, new pair", new, lambda: per_op(specs, dp))
    await measured("ensure_veth, healthy pair (Join)", new, lambda: per_op(specs, dp))
    for spec in specs:
        await dp.remove_veth(spec.host_name, spec.endpoint_id)
    await dp.remove_bridge(bridge.name, bridge.network_id)
    await dp.close()

    store = SQLiteStore(tmp / "state.db")
    await store.open()
    dp = make_dataplane(ns)
    svc = NetworkService(store, dp)
    nid = "ab" * 32
    await svc.create_network(m.CreateNetworkRequest(
        NetworkID=nid, Options={"com.docker.network.generic": {"com.docker.network.bridge.name": "pnmeasbr1"}},
        IPv4Data=[m.IPAMData(AddressSpace="local", Pool="10.254.0.0/20", Gateway="10.254.0.1/20")]))
    t = time.perf_counter()
    for i in range(endpoints):
        await svc.create_endpoint(m.CreateEndpointRequest(
            NetworkID=nid, EndpointID=f"{i + 1:010x}" + "c" * 54,
            Interface=m.EndpointInterface(Address=f"10.254.{(i + 2) // 256}.{(i + 2) % 256}/20")))
    print(f"(created {endpoints} endpoints through NetworkService in {time.perf_counter() - t:.1f} s)")
    await dp.close()
    for round_ in (1, 2):
        dp = make_dataplane(ns)  # as after a restart: nothing cached
        report: list[Any] = []

        async def run(dp: NetlinkDataplane = dp, report: list[Any] = report) -> None:
            report.append(await reconcile(store, dp))

        await measured(f"reconcile, {endpoints} healthy (#{round_})", endpoints, run)
        assert report[0].errors == [], report[0].errors
        await dp.close()
    dp = make_dataplane(ns)
    samples = []
    for _ in range(5):
        CountingIPRoute.sends = 0
        cpu = time.process_time()
        links = await dp.owned_links()
        samples.append((time.process_time() - cpu) / len(links))
    print(f"owned_links dump: {len(links)} owned links, cpu/link median {statistics.median(samples) * 1e6:.0f} us")
    await dp.close()
    await store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--new", type=int, default=50)
    args = ap.parse_args()
    name = f"pn-meas-{secrets.token_hex(4)}"
    netns.create(name)
    try:
        with tempfile.TemporaryDirectory(prefix="pn-meas-") as d:
            asyncio.run(main(name, args.endpoints, args.new, Path(d)))
    finally:
        netns.remove(name)
    sys.exit(0)
