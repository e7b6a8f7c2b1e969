"""The registry and the member on a real etcd: two hosts (two clients, two members, each with its own
SQLite and a fake VXLAN device) see each other's endpoints through etcd's watch; a lease revoked
behind a host's back is granted again and its records put again (compaction: over the fake, in
test_cluster_member)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cluster_hosts import Host, running_hosts, until
from etcd_server import EtcdServer


@pytest.fixture
async def hosts(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[tuple[Host, Host]]:
    url = f"etcd://{etcd_server.endpoint}"
    async with running_hosts([url, url], etcd_prefix, ["192.0.2.21", "192.0.2.22"]) as (h1, h2):
        yield h1, h2


async def test_each_host_sees_the_others_endpoint_through_etcd(hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    ip1, ip2 = await asyncio.gather(h1.create_and_run("1" * 64, "a" * 64), h2.create_and_run("2" * 64, "b" * 64))
    assert ip1 != ip2
    await until(h1.sees("1" * 64, ip2, h2.addr), "host 1 has host 2's endpoint")
    await until(h2.sees("2" * 64, ip1, h1.addr), "host 2 has host 1's endpoint")
    assert h1.vx.devices["1" * 64].vni == h2.vx.devices["2" * 64].vni


async def test_a_revoked_lease_is_granted_again_and_the_records_put_again(
        hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    ip1 = await h1.create_and_run("1" * 64, "a" * 64)
    await h2.create_and_run("2" * 64, "b" * 64)
    await until(h2.sees("2" * 64, ip1, h1.addr), "published")
    # an operator (or etcd) drops host 1's lease: its records go, then come back under a new lease
    await h2.client.revoke_lease(h1.member.registry._lease.id)
    await until(h2.sees("2" * 64, None, None), "host 1 gone with its lease")
    await until(h2.sees("2" * 64, ip1, h1.addr), "host 1 back under a new lease")
    assert h1.member.registry._lease.regrants >= 1
