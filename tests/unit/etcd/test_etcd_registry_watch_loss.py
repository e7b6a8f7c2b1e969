"""The registry's watch lost, on a real etcd (issue 12: "Watch lost or history compacted: the registry
is read again in full and the kernel entries follow"):

(a) one host's etcd connection cut (a relay, tcp_cut) while another host adds and removes containers
    and etcd compacts its history past the cut host's revision: on reconnect the watch finds its
    history gone, reads the registry in full, and the host's VXLAN entries are exactly the other
    host's current endpoints (the removal it never saw included);
(b) etcd restarted: the watch resumes and a container started afterwards shows up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from cluster_hosts import POOL, Host, running_hosts, until
from etcd_server import EtcdServer
from tcp_cut import TcpCut

from pynetdrv.api import ipam_models as im
from tests.unit.driver_requests import ep_req, ref

N1, N2 = "1" * 64, "2" * 64


def _endpoints(h: Host, nid: str) -> set[tuple[tuple[str, ...], str]]:
    dev = h.vx.devices.get(nid)
    return {(e.ips, e.vtep) for e in dev.endpoints} if dev else set()


@pytest.fixture
async def relay(etcd_server: EtcdServer) -> AsyncIterator[TcpCut]:
    cut = TcpCut("127.0.0.1", etcd_server.client_port)
    await cut.start()
    try:
        yield cut
    finally:
        await cut.close()


async def _run(h: Host, nid: str, eid: str) -> str:
    a = await h.ipam.request_address(im.RequestAddressRequest(PoolID=POOL, Address=""))
    await h.net.create_endpoint(ep_req(eid, nid, a.Address))
    return a.Address.split("/")[0]


async def test_a_cut_host_misses_changes_and_compaction_then_reads_in_full_and_matches(
        etcd_server: EtcdServer, etcd_prefix: bytes, relay: TcpCut, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pynetdrv.cluster.watch")
    direct = f"etcd://{etcd_server.endpoint}"
    async with running_hosts([f"etcd://{relay.endpoint}", direct], etcd_prefix, ["192.0.2.21", "192.0.2.22"],
                             timeout=2) as (h1, h2):
        await h1.create_and_run(N1, "a" * 64)
        gone = await h2.create_and_run(N2, "b" * 64)
        await until(lambda: _endpoints(h1, N1) == {((gone,), h2.addr)}, "host 1 sees host 2's first container")

        await relay.cut()  # host 1 loses etcd; host 2 goes on
        await h2.net.delete_endpoint(ref("b" * 64, N2))
        await h2.ipam.release_address(im.ReleaseAddressRequest(PoolID=POOL, Address=gone))
        new = {await _run(h2, N2, "c" * 64), await _run(h2, N2, "d" * 64)}
        head = (await h2.client.get_prefix(etcd_prefix)).revision
        etcd_server.compact(head)  # the history host 1 would resume from is gone
        assert _endpoints(h1, N1) == {((gone,), h2.addr)}  # still what it knew

        await relay.start()  # same port: host 1's client reconnects
        want = {((ip,), h2.addr) for ip in new}
        await until(lambda: _endpoints(h1, N1) == want, "host 1 has exactly host 2's current containers", 15)
        assert any("lost its history" in r.getMessage() for r in caplog.records), "no resync happened"
        assert h1.vx.devices[N1].hosts == {h2.addr}


async def test_the_registry_watch_resumes_after_an_etcd_restart(
        etcd_restartable: EtcdServer, etcd_prefix: bytes) -> None:
    url = f"etcd://{etcd_restartable.endpoint}"
    async with running_hosts([url, url], etcd_prefix, ["192.0.2.21", "192.0.2.22"], timeout=2) as (h1, h2):
        await h1.create_and_run(N1, "a" * 64)
        first = await h2.create_and_run(N2, "b" * 64)
        await until(lambda: _endpoints(h1, N1) == {((first,), h2.addr)}, "before the restart")
        etcd_restartable.stop()
        await asyncio.sleep(0.5)
        etcd_restartable.start()
        second = await _run(h2, N2, "c" * 64)
        await until(lambda: _endpoints(h1, N1) == {((first,), h2.addr), ((second,), h2.addr)},
                    "a container started after the restart is seen", 15)
