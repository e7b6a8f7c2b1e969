"""``pynetdrv status`` shows Docker's network names next to the IDs, read from a stand-in Engine
API on a unix socket (aiohttp, in the test); IDs alone, with a note, when Docker does not answer
within the bound. Status only ever GETs."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from pynetdrv.api import network_models as nm
from pynetdrv.docker_names import read_network_names
from pynetdrv.driver.service import NetworkService
from pynetdrv.status import render_status
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NET_A, NET_B = "a1" * 32, "b2" * 32


class StandIn:
    """GET /networks answers ``listing`` (or ``status``); every request is recorded."""

    def __init__(self) -> None:
        self.listing: object = []
        self.status = 200
        self.requests: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if request.method == "GET" and request.path == "/networks":
            return web.json_response(self.listing, status=self.status)
        return web.json_response({"message": "not here"}, status=404)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[StandIn, Path]]:
    stand_in, sock = StandIn(), tmp_path / "docker.sock"
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    try:
        yield stand_in, sock
    finally:
        await runner.cleanup()


@pytest.fixture
async def silent_engine(tmp_path: Path) -> AsyncIterator[Path]:
    """A socket that accepts and reads, and never answers (a hung dockerd)."""
    sock = tmp_path / "hung.sock"
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_unix_server(never_answer, path=str(sock))
    try:
        yield sock
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


async def _two_networks(store: SQLiteStore) -> None:
    net = NetworkService(store, FakeDataplane(), FakeFirewall(), FakeReserver())
    for nid, pool in ((NET_A, "10.9.1.0/24"), (NET_B, "10.9.2.0/24")):
        await net.create_network(nm.CreateNetworkRequest(
            NetworkID=nid, IPv4Data=[nm.IPAMData(Pool=pool, Gateway=pool.replace("0/24", "1/24"))]))


def _line_of(text: str, nid: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(nid[:12]))


async def test_names_from_docker_appear_next_to_the_ids(store: SQLiteStore, engine: tuple[StandIn, Path]) -> None:
    stand_in, sock = engine
    await _two_networks(store)
    stand_in.listing = [{"Name": "shop_frontend", "Id": NET_A, "Driver": "pynetdrv"},
                        {"Name": "bridge", "Id": "c3" * 32, "Driver": "bridge"}]
    docker = await read_network_names(sock)
    assert docker.unavailable == ""
    text = await render_status(store, docker.names)
    assert _line_of(text, NET_A).startswith(f"{NET_A[:12]} shop_frontend ")
    # A network Docker does not list (yet, or any more) keeps its ID alone, columns still aligned.
    line_b = _line_of(text, NET_B)
    assert line_b.split()[1].startswith("pnbr-")
    header = text.splitlines()[0]
    assert header.index("BRIDGE") == line_b.index("pnbr-") == _line_of(text, NET_A).index("pnbr-")
    assert stand_in.requests == [("GET", "/networks")]  # one read, nothing else


async def test_without_names_status_shows_ids_alone(store: SQLiteStore) -> None:
    await _two_networks(store)
    text = await render_status(store, {})
    assert _line_of(text, NET_A).split()[1].startswith("pnbr-")


async def test_a_hung_docker_is_given_up_on_within_the_bound(silent_engine: Path) -> None:
    started = time.monotonic()
    docker = await read_network_names(silent_engine, timeout=0.5)
    assert time.monotonic() - started < 3
    assert docker.names == {} and "did not answer within 0.5 s" in docker.unavailable


@pytest.mark.parametrize(("status", "listing", "why"), [
    (500, {"message": "boom"}, "HTTP 500"),
    (200, {"not": "a list"}, "no network list"),
])
async def test_a_bad_answer_means_ids_alone(engine: tuple[StandIn, Path], status: int, listing: object,
                                            why: str) -> None:
    stand_in, sock = engine
    stand_in.status, stand_in.listing = status, listing
    docker = await read_network_names(sock)
    assert docker.names == {} and why in docker.unavailable


async def test_no_socket_means_ids_alone(tmp_path: Path) -> None:
    docker = await read_network_names(tmp_path / "absent.sock")
    assert docker.names == {} and "no Docker socket" in docker.unavailable


async def _cli(*args: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pynetdrv", "status", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode(), time.monotonic() - started


async def test_cli_names_networks_and_falls_back_to_ids(tmp_path: Path, file_store: SQLiteStore,
                                                        engine: tuple[StandIn, Path], silent_engine: Path) -> None:
    stand_in, sock = engine
    await _two_networks(file_store)
    state = tmp_path / "state.db"
    stand_in.listing = [{"Name": "shop_backend", "Id": NET_B}]
    rc, out, err, _ = await _cli("--state", str(state), "--docker-socket", str(sock))
    assert (rc, err) == (0, "")
    assert _line_of(out, NET_B).startswith(f"{NET_B[:12]} shop_backend ")

    rc, out, err, took = await _cli("--state", str(state), "--docker-socket", str(silent_engine))
    assert rc == 0 and took < 10
    assert "showing network IDs only" in err and "did not answer within 2 s" in err
    assert _line_of(out, NET_B).split()[1].startswith("pnbr-")

    before = len(stand_in.requests)
    rc, out, err, _ = await _cli("--state", str(state), "--docker-socket", str(sock), "--no-docker")
    assert (rc, err) == (0, "") and len(stand_in.requests) == before
