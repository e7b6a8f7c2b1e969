"""The daemon lifecycle in-process: serve() on a unix socket in tmp_path with
the fake data plane, stopped by a real SIGTERM to this process."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from pynetdrv.api import network_models as nm
from pynetdrv.config import Config
from pynetdrv.dataplane.fake import FakeDataplane
from pynetdrv.driver.service import NetworkService
from pynetdrv.firewall.fake import FakeFirewall
from pynetdrv.ports.fake import FakeReserver
from pynetdrv.server import serve
from pynetdrv.store.sqlite import SQLiteStore


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
    await NetworkService(store, dp).create_network(nm.CreateNetworkRequest(
        NetworkID="ab" * 32, IPv4Data=[nm.IPAMData(Pool="10.7.0.0/24", Gateway="10.7.0.1/24")]))
    await store.close()
    fw = FakeFirewall()
    await _run_and_stop(config, dp, fw)
    assert fw.removals == 0
    # Rebuilt at start from the state file, and left in place at shutdown.
    assert [n.bridge for n in fw.state.networks] == ["pnbr-ababababab"]
    assert "pnbr-ababababab" in dp.links, "shutdown must not tear down a network's bridge"
