"""``pynetdrv status``'s cluster view on a real etcd: two hosts (two clients, members with their own
SQLite and a fake VXLAN device) each run a container on one cluster network; the inventory read
from etcd lists both hosts alive and attributes each address to its host.  An etcd that stops
answering (SIGSTOP) costs the bounded wait, then is named."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from cluster_hosts import Host, running_hosts, until
from etcd_server import EtcdServer

from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.settings import ClusterSettings
from pynetdrv.registry.inventory import read_inventory, render_inventory
from pynetdrv.registry.readonly import EtcdAway, read_cluster
from pynetdrv.store.etcd_keys import Keys


@pytest.fixture
async def two(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[tuple[Host, Host]]:
    url = f"etcd://{etcd_server.endpoint}"
    async with running_hosts([url, url], etcd_prefix, ["192.0.2.31", "192.0.2.32"]) as (h1, h2):
        yield h1, h2


async def test_status_view_attributes_every_address_to_its_host(
        two: tuple[Host, Host], etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    h1, h2 = two
    ip1, ip2 = await asyncio.gather(h1.create_and_run("1" * 64, "a" * 64), h2.create_and_run("2" * 64, "b" * 64))
    await until(h1.sees("1" * 64, ip2, h2.addr), "host 1 has host 2's endpoint")
    await until(h2.sees("2" * 64, ip1, h1.addr), "host 2 has host 1's endpoint")
    async with EtcdClient.from_url(f"etcd://{etcd_server.endpoint}", timeout=3) as reader:
        inv = await read_inventory(reader, Keys(etcd_prefix))
    assert inv.host_names() == [h1.addr, h2.addr] and all(inv.alive(h) for h in inv.host_names())
    (net,) = inv.networks
    assert (net.pool.pool_id, net.vni is not None, sorted(net.users)) == ("local/10.66.0.0/24", True,
                                                                          [h1.addr, h2.addr])
    held = {x.address: (x.kind, x.host) for x in inv.holders(net)}
    assert held == {"10.66.0.1": ("gateway", "every host"), ip1: ("endpoint", h1.addr), ip2: ("endpoint", h2.addr)}
    rows = render_inventory(inv)
    assert any(r.startswith(f"{ip2} ") and f"{h2.addr} (endpoint {'b' * 12})" in r for r in rows), rows


async def test_an_etcd_that_does_not_answer_is_named_within_the_wait(etcd_restartable: EtcdServer) -> None:
    settings = ClusterSettings(f"etcd://{etcd_restartable.endpoint}", "192.0.2.31")
    assert (await read_cluster(settings, read_inventory)).networks is not None  # answers: read
    etcd_restartable.pause()
    started = time.monotonic()
    with pytest.raises(EtcdAway, match=etcd_restartable.endpoint.split("//")[-1]):
        await read_cluster(settings, read_inventory, wait=2.0)
    assert time.monotonic() - started < 5
