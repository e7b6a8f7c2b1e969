"""The plugin as the daemon runs it, for the stateful property tests and the
protocol fuzzer: the SQLite state file, startup reconcile, ``build_app`` on
a real unix socket (``unix_site``), the FakeDataplane as the kernel, and an
aiohttp client on that socket.  ``restart`` closes the store and serves again
from the same state file (the kernel, i.e. the FakeDataplane, survives);
``reboot`` does the same with an empty kernel.

Hypothesis drives these from synchronous code, so each harness owns an
``asyncio.Runner`` and its methods are synchronous.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, UnixConnector
from hypothesis import settings

from pynetdrv.config import Config, DefaultPool
from pynetdrv.reconcile import ReconcileReport, reconcile
from pynetdrv.server import build_app, unix_site
from pynetdrv.status import render_status
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

#: PYNETDRV_LONG=1: far more examples, for local runs.
LONG = os.environ.get("PYNETDRV_LONG", "") not in ("", "0")


def scaled(ci: int, long: int) -> int:
    return long if LONG else ci


def machine_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=scaled(examples, examples * 20),
        stateful_step_count=scaled(steps, steps * 3),
        deadline=None,
    )


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


class PluginHarness:
    def __init__(self, default_pools: tuple[str, ...] = ("base=10.226.0.0/22,size=24",)) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="pnfz-"))
        self.state = self._dir / "state.db"
        self.socket = self._dir / "pynetdrv.sock"
        self.config = Config(socket=self.socket, state=self.state,
                             default_pools=tuple(DefaultPool.parse(p) for p in default_pools))
        self.dp = FakeDataplane()
        self.store: SQLiteStore | None = None
        self.session: ClientSession | None = None
        self.requests = 0
        self.last_reconcile: ReconcileReport | None = None
        self._runner = asyncio.Runner()
        self._stack: AsyncExitStack | None = None
        self.run(self._start())

    def run(self, coro: Any) -> Any:
        return self._runner.run(coro)

    async def _start(self) -> None:
        stack = AsyncExitStack()
        store = SQLiteStore(self.state)
        await store.open()
        stack.push_async_callback(store.close)
        self.last_reconcile = await reconcile(store, self.dp)
        app = build_app(store, self.dp, self.config, FakeFirewall(), FakeReserver())
        await stack.enter_async_context(unix_site(app, self.socket))
        session = ClientSession(connector=UnixConnector(path=str(self.socket)), timeout=ClientTimeout(total=30))
        stack.push_async_callback(session.close)
        self.store, self.session, self._stack = store, session, stack

    async def _stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self.store = self.session = self._stack = None

    def restart(self) -> None:
        """The daemon stops and starts again on the same state file."""
        self.run(self._stop())
        self.run(self._start())

    def reboot(self) -> None:
        """The host reboots while the daemon is down: every link is gone."""
        self.run(self._stop())
        self.dp.links.clear()
        self.run(self._start())

    def close(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self._runner.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    async def acall(self, path: str, body: Any = None, *, raw: bytes | None = None, method: str = "POST",
                    headers: dict[str, str] | None = None) -> Reply:
        """A request as dockerd sends it (no Content-Type unless given)."""
        assert self.session is not None
        data: bytes | io.BytesIO = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        if len(data) > 256 * 1024:  # aiohttp warns about big raw bytes; a stream is sent the same way
            data = io.BytesIO(data)
        self.requests += 1
        async with self.session.request(method, "http://plugin" + path, data=data, headers=headers or {},
                                         skip_auto_headers={"Content-Type"}) as resp:
            return Reply(resp.status, resp.content_type, await resp.text())

    def call(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.run(self.acall(path, body, **kw))

    async def asnapshot(self) -> dict[str, Any]:
        """Everything the plugin knows and has made, to compare before/after."""
        s = self.store
        assert s is not None
        pools = await s.list_pools()
        return {
            "pools": pools,
            "allocations": {p.pool_id: await s.allocations(p.pool_id) for p in pools},
            "networks": await s.list_networks(),
            "endpoints": await s.list_endpoints(),
            "links": {n: (link.kind, link.alias, link.spec) for n, link in self.dp.links.items()},
        }

    def snapshot(self) -> dict[str, Any]:
        return self.run(self.asnapshot())

    def status(self) -> str:
        assert self.store is not None
        return self.run(render_status(self.store))
