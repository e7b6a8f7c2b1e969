"""The daemon lifecycle in-process: serve() on a unix socket in tmp_path with
the fake data plane, stopped by a real SIGTERM to this process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pynetdrv.api import network_models as nm
from pynetdrv.config import Config
from pynetdrv.dataplane.base import OwnedLink
from pynetdrv.driver.service import NetworkService
from pynetdrv.lock import StateLock
from pynetdrv.server import serve
from pynetdrv.store.sqlite import SQLiteStore
from pynetdrv.store.sqlite_file import StateFileError
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver


async def _activate(sock: Path) -> int:
    connector = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=connector) as s, s.post("http://plugin/Plugin.Activate") as r:
        return r.status


async def _run_and_stop(config: Config, dp: FakeDataplane, fw: FakeFirewall) -> None:
    task = asyncio.create_task(serve(config, dataplane=dp, firewall=fw, ports=FakeReserver()))
    for _ in range(200):
        if config.socket.exists():
            break
        await asyncio.sleep(0.02)
    assert await _activate(config.socket) == 200
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 15)
    assert not config.socket.exists(), "socket left behind after SIGTERM"


async def test_sigterm_with_no_networks_removes_firewall(tmp_path: Path) -> None:
    fw = FakeFirewall()
    await _run_and_stop(Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db"), FakeDataplane(), fw)
    assert fw.removals == 1 and fw.state.empty


async def test_sigterm_with_networks_keeps_everything(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db")
    store = SQLiteStore(config.state)
    await store.open()
    dp = FakeDataplane()
    await NetworkService(store, dp, FakeFirewall(), FakeReserver()).create_network(nm.CreateNetworkRequest(
        NetworkID="ab" * 32, IPv4Data=[nm.IPAMData(Pool="10.7.0.0/24", Gateway="10.7.0.1/24")]))
    await store.close()
    fw = FakeFirewall()
    await _run_and_stop(config, dp, fw)
    assert fw.removals == 0
    # Rebuilt at start from the state file, and left in place at shutdown.
    assert [n.bridge for n in fw.state.networks] == ["pnbr-ababababab"]
    assert "pnbr-ababababab" in dp.links, "shutdown must not tear down a network's bridge"


# Readiness: Activate at once, everything else after reconcile ---------------------------

class HeldReconcileDataplane(FakeDataplane):
    """Start-up reconcile (which lists our links first) stops in owned_links
    until ``release`` is set, or raises ``fail`` there."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def owned_links(self) -> list[OwnedLink]:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
            if self.fail is not None:
                raise self.fail
        return await super().owned_links()


async def _post(sock: Path, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    connector = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=connector) as s, \
            s.post(f"http://plugin{path}", data=b"" if body is None else json.dumps(body).encode()) as r:
        return r.status, json.loads(await r.text())


async def _started_and_held(config: Config, dp: HeldReconcileDataplane) -> asyncio.Task[None]:
    task = asyncio.create_task(serve(config, dataplane=dp, firewall=FakeFirewall(), ports=FakeReserver()))
    await asyncio.wait_for(dp.entered.wait(), 30)
    assert config.socket.exists(), "the socket is bound before reconcile starts"
    return task


async def test_activate_answers_during_reconcile_and_calls_wait_for_it(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db")
    dp = HeldReconcileDataplane()
    task = await _started_and_held(config, dp)
    try:
        assert await asyncio.wait_for(_post(config.socket, "/Plugin.Activate"), 10) == \
            (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        pool = asyncio.create_task(_post(config.socket, "/IpamDriver.RequestPool", {"Pool": "10.9.0.0/24"}))
        net = asyncio.create_task(_post(config.socket, "/NetworkDriver.CreateNetwork", {
            "NetworkID": "cd" * 32, "IPv4Data": [{"Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}]}))
        await asyncio.sleep(0.3)
        assert not pool.done() and not net.done(), "a driver/IPAM call was answered before reconcile finished"
        assert not dp.links, "CreateNetwork touched the kernel before reconcile finished"
        dp.release.set()
        status, body = await asyncio.wait_for(pool, 10)
        assert (status, body["Pool"]) == (200, "10.9.0.0/24"), body
        status, body = await asyncio.wait_for(net, 10)
        assert (status, body) == (200, {}), body
        assert "pnbr-cdcdcdcdcd" in dp.links
    finally:
        dp.release.set()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 15)
    assert not config.socket.exists()


async def test_a_failed_reconcile_answers_waiting_calls_503_and_stops_serving(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db")
    dp = HeldReconcileDataplane()
    dp.fail = RuntimeError("netlink went away")
    task = await _started_and_held(config, dp)
    waiting = asyncio.create_task(_post(config.socket, "/IpamDriver.RequestPool", {"Pool": "10.9.0.0/24"}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    dp.release.set()
    status, body = await asyncio.wait_for(waiting, 10)
    assert status == 503 and "start-up failed in reconcile: RuntimeError: netlink went away" in body["Err"], body
    with pytest.raises(RuntimeError, match="netlink went away"):
        await asyncio.wait_for(task, 15)
    assert not config.socket.exists(), "socket left behind after a failed start"


# Components: the daemon's start and stop in the log, failures at each end -------------------

async def test_the_log_names_each_start_and_stop_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pynetdrv")
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db")
    await _run_and_stop(config, FakeDataplane(), FakeFirewall())
    messages = caplog.messages
    assert f"starting store (sqlite:{config.state})" in messages
    started = [m.removeprefix("started ").rsplit(" in ", 1)[0]
               for m in messages if re.fullmatch(r"started .+ in \d+ ms", m)]
    stopped = [m.removeprefix("stopping ") for m in messages if m.startswith("stopping ")]
    assert started[:3] == ["state lock", "store", "socket"]
    assert started[-2:] == ["firewall keeper", "restart-policy watch"]
    assert stopped == started[::-1]
    assert messages.index("shutting down") < messages.index("stopping restart-policy watch")


async def test_a_store_that_cannot_open_fails_before_the_socket(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db")
    config.state.mkdir()  # not a database file
    with pytest.raises(StateFileError) as failure:
        await serve(config, dataplane=FakeDataplane(), firewall=FakeFirewall(), ports=FakeReserver())
    assert str(config.state) in str(failure.value)
    assert not config.socket.exists(), "Docker saw a socket of a daemon that could not open its state"
    lock = StateLock(config.state)
    lock.acquire()  # released by the failed start
    lock.release()
