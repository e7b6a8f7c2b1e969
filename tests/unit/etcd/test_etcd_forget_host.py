"""``pynetdrv cluster forget-host`` on a real etcd, two hosts (each a member with its own SQLite and a
fake VXLAN device): refused while the host is up; once it is lost its addresses stay taken until
it is forgotten, then another host gets them; the other host's entries for it are gone; a second
run has nothing to do; the tombstone refuses the forgotten host's return with its old records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cluster_hosts import POOL, Host, running_hosts, until
from etcd_server import EtcdServer

from pynetdrv.api import ipam_models as im
from pynetdrv.cli import main
from pynetdrv.cluster.errors import HostForgotten
from pynetdrv.errors import Conflict
from pynetdrv.registry.tombstone import check_tombstone

N1, N3 = "1" * 64, "3" * 64


@pytest.fixture
async def hosts(etcd_server: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[tuple[Host, Host]]:
    url = f"etcd://{etcd_server.endpoint}"
    async with running_hosts([url, url], etcd_prefix, ["192.0.2.21", "192.0.2.23"]) as (h1, h3):
        yield h1, h3


def _forget(etcd: EtcdServer, prefix: bytes, host: str, *extra: str) -> int:
    return main(["cluster", "forget-host", host, "--store", f"etcd://{etcd.endpoint}",
                 "--etcd-prefix", prefix.decode(), *extra])


async def _static(h: Host, ip: str) -> str:
    a = await h.ipam.request_address(im.RequestAddressRequest(PoolID=POOL, Address=ip))
    return a.Address.split("/")[0]


async def test_a_lost_host_is_forgotten_its_addresses_freed_and_its_return_refused(
        hosts: tuple[Host, Host], etcd_server: EtcdServer, etcd_prefix: bytes,
        capsys: pytest.CaptureFixture[str]) -> None:
    h1, h3 = hosts
    await h1.create_and_run(N1, "a" * 64)
    lost = await h3.create_and_run(N3, "c" * 64)
    await until(h1.sees(N1, lost, h3.addr), "host 1 has host 3's container")

    # up: refused, one line naming the host, nothing freed
    assert await asyncio.to_thread(_forget, etcd_server, etcd_prefix, h3.addr, "--yes") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "host 192.0.2.23 is up" in err
    with pytest.raises(Conflict, match="in use"):
        await _static(h1, lost)

    # lost: its pynetdrv stops renewing (Registry.stop keeps the lease: it expires, ttl 3 s)
    await h3.member.stop()
    await until(h1.sees(N1, None, None), "host 1 dropped host 3's entries when its lease expired", 10)
    with pytest.raises(Conflict, match="in use"):
        await _static(h1, lost)  # still held: it may come back

    assert await asyncio.to_thread(_forget, etcd_server, etcd_prefix, h3.addr, "--yes") == 0
    out = capsys.readouterr().out
    assert f"1 address(es) released: {lost}" in out and "its use of the pool removed" in out
    assert "tombstone written" in out and "host 192.0.2.23 forgotten" in out
    assert await _static(h1, lost) == lost  # handed to a new container on host 1
    assert set(await h1.pools.users(POOL)) == {h1.addr}

    assert await asyncio.to_thread(_forget, etcd_server, etcd_prefix, h3.addr, "--yes") == 0
    assert "nothing to do" in capsys.readouterr().out

    # host 3 comes back with its old state: refused before it serves or publishes
    with pytest.raises(HostForgotten, match="--rejoin"):
        await check_tombstone(h3.client, h3.pools.keys, h3.addr, h3.local, rejoin=False)
    assert len(await h3.local.list_endpoints()) == 1


async def test_without_yes_and_no_terminal_nothing_is_freed(
        hosts: tuple[Host, Host], etcd_server: EtcdServer, etcd_prefix: bytes,
        capsys: pytest.CaptureFixture[str]) -> None:
    h1, h3 = hosts
    await h1.create_and_run(N1, "a" * 64)
    lost = await h3.create_and_run(N3, "c" * 64)
    await until(h1.sees(N1, lost, h3.addr), "host 1 has host 3's container")  # so its absence below means lost
    await h3.member.stop()
    await until(h1.sees(N1, None, None), "host 3's lease expired", 10)
    assert await asyncio.to_thread(_forget, etcd_server, etcd_prefix, h3.addr) == 1
    cap = capsys.readouterr()
    assert lost in cap.out and "give --yes" in cap.err and "nothing changed" in cap.err
    with pytest.raises(Conflict, match="in use"):
        await _static(h1, lost)
    assert await h1.client.get(h1.pools.keys.tombstone(h3.addr)) is None
