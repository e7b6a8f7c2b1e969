"""The HTTP surface on the real unix socket (unix_site): mode, stale-file
replacement, serving, and removal on exit."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path

import pytest
from aiohttp import ClientSession, UnixConnector
from http_helpers import raw_http

from pynetdrv.config import Config
from pynetdrv.daemon.http import UnixSocket
from pynetdrv.server import build_app, unix_site
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver


async def test_unix_site_mode_0660_serves_and_removes_socket(tmp_path: Path, store: SQLiteStore,
                                                             dp: FakeDataplane) -> None:
    sock = tmp_path / "run" / "pn.sock"
    sock.parent.mkdir()
    sock.write_text("stale leftover of a dead instance")
    async with unix_site(build_app(store, dp, Config(), FakeFirewall(), FakeReserver()), sock):
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        reader, writer = await asyncio.open_unix_connection(str(sock))
        status, _, payload = await raw_http(reader, writer, "/Plugin.Activate")
        assert status == 200 and json.loads(payload) == {"Implements": ["NetworkDriver", "IpamDriver"]}
        async with (
            ClientSession(connector=UnixConnector(path=str(sock))) as session,
            session.post("http://plugin/IpamDriver.RequestPool", data=b'{"Pool": "10.5.0.0/24"}',
                         skip_auto_headers={"Content-Type"}) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json(content_type=None))["Pool"] == "10.5.0.0/24"
    assert not sock.exists()
    assert [p.cidr for p in await store.list_pools()] == ["10.5.0.0/24"]


async def test_unix_site_removes_socket_when_the_body_raises(tmp_path: Path, store: SQLiteStore,
                                                             dp: FakeDataplane) -> None:
    sock = tmp_path / "p.sock"
    with pytest.raises(RuntimeError, match="boom"):
        async with unix_site(build_app(store, dp, Config(), FakeFirewall(), FakeReserver()), sock):
            assert sock.exists()
            raise RuntimeError("boom")
    assert not sock.exists()


async def test_an_adopted_socket_is_served_as_it_is_and_left_in_place(tmp_path: Path, store: SQLiteStore,
                                                                      dp: FakeDataplane) -> None:
    """Socket activation: the listening socket systemd passed is served; its
    file (the socket unit's) keeps its inode and mode, and stays after close."""
    path = tmp_path / "pn.sock"
    passed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    passed.bind(str(path))
    passed.listen()
    os.chmod(path, 0o600)
    inode = os.stat(path).st_ino
    served = UnixSocket(build_app(store, dp, Config(), FakeFirewall(), FakeReserver()), path, adopted=passed)
    assert served.adopted
    await served.open()
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        status, _, payload = await raw_http(reader, writer, "/Plugin.Activate")
        assert status == 200 and json.loads(payload) == {"Implements": ["NetworkDriver", "IpamDriver"]}
        assert os.stat(path).st_ino == inode and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        await served.close()
    assert path.exists() and os.stat(path).st_ino == inode
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_unix_connection(str(path))  # our copy of the socket is closed


async def test_an_adopted_ip_socket_is_refused(tmp_path: Path, store: SQLiteStore, dp: FakeDataplane) -> None:
    """The plugin API is never served on an IP socket, whatever was passed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        served = UnixSocket(build_app(store, dp, Config(), FakeFirewall(), FakeReserver()), tmp_path / "x.sock",
                            adopted=tcp)
        with pytest.raises(ValueError, match="refusing to serve a passed AF_INET socket: unix only"):
            await served.open()
        assert not (tmp_path / "x.sock").exists()
