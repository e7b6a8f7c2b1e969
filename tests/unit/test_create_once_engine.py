"""The create-once Engine API client (pynetdrv.createonce.engine.DockerEngine) against a stand-in
Engine API on a unix socket (aiohttp, in the test): list only our driver's networks with their
container counts, create with the entry's spec and generation label, remove (a 404 is fine, an
in-use network is an error naming it), network events, and Docker away or hung."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pynetdrv.createonce.catalog import Entry, Spec, Subnet
from pynetdrv.createonce.engine import DockerEngine, DockerError, DockerUnavailable
from pynetdrv.createonce.plan import GENERATION_LABEL

SPEC = Spec((Subnet("10.77.0.0/24", "10.77.0.1", "", {"r": "10.77.0.9"}),), {"com.docker.network.driver.mtu": "1400"},
            {"team": "a"}, "pynetdrv", {"o": "1"}, False, True, True)


class StandIn:
    def __init__(self) -> None:
        self.nets: dict[str, dict[str, Any]] = {
            "b" * 64: {"Id": "b" * 64, "Name": "bridge", "Driver": "bridge", "IPAM": {"Config": []}}}
        self.created: list[dict[str, Any]] = []
        self.filters: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if method == "GET" and path == "/networks":
            self.filters.append(request.query.get("filters", ""))
            return web.json_response(list(self.nets.values()))
        if method == "POST" and path == "/networks/create":
            body = await request.json()
            self.created.append(body)
            if any(n["Name"] == body["Name"] for n in self.nets.values()):
                return web.json_response({"message": f"network with name {body['Name']} already exists"}, status=409)
            nid = f"{len(self.created):064x}"
            self.nets[nid] = {"Id": nid, "Name": body["Name"], "Driver": body["Driver"], "IPAM": body["IPAM"],
                              "Options": body["Options"], "Labels": body["Labels"], "EnableIPv6": body["EnableIPv6"],
                              "Internal": body["Internal"], "Attachable": body["Attachable"], "Containers": {}}
            return web.json_response({"Id": nid, "Warning": ""}, status=201)
        if path.startswith("/networks/"):
            net = self.nets.get(path.rsplit("/", 1)[1])
            if net is None:
                return web.json_response({"message": "network not found"}, status=404)
            if method == "GET":
                return web.json_response(net)
            if net.get("Containers"):
                return web.json_response({"message": f"network {net['Name']} has active endpoints"}, status=403)
            del self.nets[net["Id"]]
            return web.Response(status=204)
        if path == "/events":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for action in ("create", "destroy"):
                await resp.write(json.dumps({"Type": "network", "Action": action}).encode() + b"\n")
            await resp.write(b"not json\n")
            return resp
        return web.json_response({"message": "not here"}, status=404)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[StandIn, DockerEngine]]:
    stand_in, sock = StandIn(), tmp_path / "docker.sock"
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    try:
        yield stand_in, DockerEngine(sock, "pynetdrv", timeout=2)
    finally:
        await runner.cleanup()


async def test_create_list_remove_round_trip(api: tuple[StandIn, DockerEngine]) -> None:
    stand_in, engine = api
    assert await engine.networks() == []  # the bridge network is not ours
    assert json.loads(stand_in.filters[0]) == {"driver": ["pynetdrv"]}
    nid = await engine.create(Entry("demo", 3, SPEC))
    body = stand_in.created[0]
    assert body["Driver"] == "pynetdrv" and body["Labels"][GENERATION_LABEL] == "3"
    assert body["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1",
                                       "AuxiliaryAddresses": {"r": "10.77.0.9"}}]
    [net] = await engine.networks()
    assert (net.id, net.name, net.spec, net.generation, net.containers) == (nid, "demo", SPEC, 3, 0)
    stand_in.nets[nid]["Containers"] = {"c1": {}}
    assert (await engine.networks())[0].containers == 1
    with pytest.raises(DockerError, match="demo has active endpoints"):
        await engine.remove(nid)
    stand_in.nets[nid]["Containers"] = {}
    await engine.remove(nid)
    await engine.remove(nid)  # gone already: fine
    assert await engine.networks() == []


async def test_a_refused_create_names_dockers_reason(api: tuple[StandIn, DockerEngine]) -> None:
    _, engine = api
    await engine.create(Entry("demo", 1, SPEC))
    with pytest.raises(DockerError, match="HTTP 409: network with name demo already exists"):
        await engine.create(Entry("demo", 1, SPEC))


async def test_events_yield_actions(api: tuple[StandIn, DockerEngine]) -> None:
    _, engine = api
    assert [a async for a in engine.events()] == ["create", "destroy"]


async def test_docker_away_or_hung_is_unavailable(tmp_path: Path) -> None:
    away = DockerEngine(tmp_path / "none.sock", "pynetdrv", timeout=1)
    with pytest.raises(DockerUnavailable, match=r"none\.sock did not answer"):
        await away.networks()
    with pytest.raises(DockerUnavailable, match="event stream"):
        [a async for a in away.events()]
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_unix_server(never_answer, path=str(tmp_path / "hung.sock"))
    try:
        with pytest.raises(DockerUnavailable, match=r"did not answer within 0\.5 s"):
            await DockerEngine(tmp_path / "hung.sock", "pynetdrv", timeout=0.5).networks()
    finally:
        for w in held:
            w.close()
        server.close()
