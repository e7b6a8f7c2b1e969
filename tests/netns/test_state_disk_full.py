"""The state file's file system full or turned read-only while pynetdrv
serves: the real SQLite store on a small tmpfs (or an ext4 image forced
read-only), the real netlink data plane in a throwaway namespace, the plugin
app on a unix socket.  Every write request fails with an {"Err"} naming the
state file and the disk problem; what is on disk is unchanged, no bridge or
veth of the failed call is left in the kernel; reads keep working; and once
space returns the same requests succeed."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from netns_util import link_names
from pyroute2 import AsyncIPRoute
from state_disk import dump, ext4_image, fill, force_read_only, is_read_only, small_tmpfs

from pynetdrv.config import Config
from pynetdrv.dataplane.netlink import NetlinkDataplane
from pynetdrv.server import build_app, unix_site
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


@dataclass
class Plugin:
    sock: Path
    state: Path

    async def call(self, path: str, body: Any = None) -> tuple[int, Any]:
        connector = aiohttp.UnixConnector(path=str(self.sock))
        async with aiohttp.ClientSession(connector=connector) as s:
            data = b"" if body is None else json.dumps(body).encode()
            async with s.post(f"http://plugin{path}", data=data) as r:
                return r.status, json.loads(await r.text())

    async def ok(self, path: str, body: Any = None) -> Any:
        status, reply = await self.call(path, body)
        assert status == 200, (path, reply)
        return reply


@asynccontextmanager
async def serving(state: Path, dataplane: NetlinkDataplane, sock: Path) -> AsyncIterator[Plugin]:
    store = SQLiteStore(state)
    await store.open()
    try:
        app = build_app(store, dataplane, Config(socket=sock, state=state), FakeFirewall(), FakeReserver())
        async with unix_site(app, sock):
            yield Plugin(sock, state)
    finally:
        await store.close()


def net_id() -> str:
    return secrets.token_hex(32)


def create_network(nid: str, pool: str, gateway: str) -> dict[str, Any]:
    return {"NetworkID": nid, "Options": {"com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": "local", "Pool": pool, "Gateway": gateway}], "IPv6Data": []}


def create_endpoint(nid: str, eid: str, address: str) -> dict[str, Any]:
    return {"NetworkID": nid, "EndpointID": eid, "Interface": {"Address": address}, "Options": {}}


async def populate(p: Plugin) -> tuple[str, str, str]:
    """A pool with a gateway and one address, a network, one endpoint."""
    pool = (await p.ok("/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.228.1.0/24"}))["PoolID"]
    await p.ok("/IpamDriver.RequestAddress", {"PoolID": pool, "Options": GATEWAY})
    await p.ok("/IpamDriver.RequestAddress", {"PoolID": pool})
    nid, eid = net_id(), secrets.token_hex(32)
    await p.ok("/NetworkDriver.CreateNetwork", create_network(nid, "10.228.1.0/24", "10.228.1.1/24"))
    await p.ok("/NetworkDriver.CreateEndpoint", create_endpoint(nid, eid, "10.228.1.2/24"))
    return pool, nid, eid


def writes(pool: str, nid: str, eid: str, new_nid: str, new_eid: str) -> list[tuple[str, dict[str, Any]]]:
    """One of every kind of write Docker sends."""
    return [
        ("/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.228.2.0/24"}),
        ("/IpamDriver.RequestAddress", {"PoolID": pool}),
        ("/IpamDriver.RequestAddress", {"PoolID": pool, "Address": "10.228.1.77"}),
        ("/NetworkDriver.CreateNetwork", create_network(new_nid, "10.228.3.0/24", "10.228.3.1/24")),
        ("/NetworkDriver.CreateEndpoint", create_endpoint(nid, new_eid, "10.228.1.9/24")),
        ("/NetworkDriver.Join", {"NetworkID": nid, "EndpointID": eid, "SandboxKey": "/var/run/docker/netns/x"}),
        ("/NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": eid}),
        ("/IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": "10.228.1.2"}),
        ("/IpamDriver.ReleasePool", {"PoolID": pool}),
        ("/NetworkDriver.DeleteNetwork", {"NetworkID": nid}),
    ]


async def reads_still_work(p: Plugin, nid: str, eid: str) -> None:
    await p.ok("/Plugin.Activate")
    await p.ok("/NetworkDriver.GetCapabilities")
    info = await p.ok("/NetworkDriver.EndpointOperInfo", {"NetworkID": nid, "EndpointID": eid})
    assert info["Value"]["HostInterface"].startswith("pnve-")


async def assert_every_write_fails_cleanly(p: Plugin, kernel: AsyncIPRoute, ids: tuple[str, str, str],
                                           problem: str) -> int:
    pool, nid, eid = ids
    before_disk, before_links = dump(p.state), await link_names(kernel)
    failed = 0
    for path, body in writes(pool, nid, eid, net_id(), secrets.token_hex(32)):
        status, reply = await p.call(path, body)
        assert status == 500 and set(reply) == {"Err"}, (path, status, reply)
        assert f"state file {p.state}" in reply["Err"] and problem in reply["Err"], (path, reply)
        assert dump(p.state) == before_disk, f"{path} changed the state on disk"
        assert await link_names(kernel) == before_links, f"{path} left or removed a kernel object"
        failed += 1
    await reads_still_work(p, nid, eid)
    return failed


async def assert_writes_work_again(p: Plugin, kernel: AsyncIPRoute, ids: tuple[str, str, str]) -> None:
    pool, nid, eid = ids
    new_nid, new_eid = net_id(), secrets.token_hex(32)
    for path, body in writes(pool, nid, eid, new_nid, new_eid):
        await p.ok(path, body)
    # The new network is there; the old one went with DeleteNetwork, the
    # endpoint created on it meanwhile with it.
    assert await link_names(kernel) == {"lo", f"pnbr-{new_nid[:10]}"}
    state = dump(p.state)
    assert [r[0] for r in state["pools"]] == ["local/10.228.2.0/24"]


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    with small_tmpfs("2m") as mountpoint:
        yield mountpoint


async def test_full_disk_fails_every_write_cleanly_and_service_resumes(
    tmpfs: Path, dataplane: NetlinkDataplane, kernel: AsyncIPRoute, tmp_path: Path
) -> None:
    async with serving(tmpfs / "state.db", dataplane, tmp_path / "p.sock") as p:
        ids = await populate(p)
        filler = fill(tmpfs)
        failed = await assert_every_write_fails_cleanly(p, kernel, ids, "SQLITE_FULL")
        assert failed == 10
        # Still full: a second round fails the same way (no transaction left open).
        await assert_every_write_fails_cleanly(p, kernel, ids, "file system holding it is full")
        filler.unlink()
        await assert_writes_work_again(p, kernel, ids)


async def test_full_disk_state_survives_a_restart_unchanged(
    tmpfs: Path, dataplane: NetlinkDataplane, kernel: AsyncIPRoute, tmp_path: Path
) -> None:
    """Failures while full leave nothing that a fresh open would see."""
    state = tmpfs / "state.db"
    async with serving(state, dataplane, tmp_path / "p.sock") as p:
        ids = await populate(p)
        before = dump(state)
        filler = fill(tmpfs)
        await assert_every_write_fails_cleanly(p, kernel, ids, "SQLITE_FULL")
    filler.unlink()
    assert dump(state) == before
    async with serving(state, dataplane, tmp_path / "p.sock") as p:
        await assert_writes_work_again(p, kernel, ids)


async def test_file_system_turned_read_only_fails_writes_and_keeps_the_state(
    dataplane: NetlinkDataplane, kernel: AsyncIPRoute, tmp_path: Path
) -> None:
    """ext4 with errors=remount-ro after an I/O error: writes fail naming the
    state file; after fsck and a fresh mount the file holds exactly what it
    held before the fault, and pynetdrv serves from it."""
    with ext4_image() as (mountpoint, device):
        state = mountpoint / "state.db"
        async with serving(state, dataplane, tmp_path / "p.sock") as p:
            ids = await populate(p)
            before = dump(state)
            force_read_only(device)
            assert is_read_only(mountpoint)
            await assert_every_write_fails_cleanly(p, kernel, ids, "SQLITE_IOERR")
        image_copy = tmp_path / "state-after.db"
        image_copy.write_bytes(state.read_bytes())
        wal = Path(f"{state}-wal")
        if wal.exists():  # committed transactions may still be in the WAL (the -shm index is rebuilt)
            Path(f"{image_copy}-wal").write_bytes(wal.read_bytes())
    assert dump(image_copy) == before
    async with serving(image_copy, dataplane, tmp_path / "p2.sock") as p:
        await assert_writes_work_again(p, kernel, ids)
