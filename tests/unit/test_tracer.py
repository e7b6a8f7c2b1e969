"""The tracer (tools/tracer) that recorded the wire fixtures: its stand-in plugin, served
in-process, answers each call as dockerd needs and writes it to the trace exactly as it
came (path, JSON body, Accept, Content-Length), under the step it happened in; and every
engine the suite runs on has its recorded traces, made by the script that is in the repo."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from unit_helpers import TRACES, load_recording, suite_engines

from tools.tracer.recorder import Recorder, StandInIpam, build_app
from tools.tracer.script import SCENARIOS, Step

ACCEPT = "application/vnd.docker.plugins.v1.2+json"


class Tracer:
    def __init__(self) -> None:
        self.out = io.StringIO()
        self.recorder = Recorder(self.out)
        self.ipam = StandInIpam()
        self.client: TestClient[Any, Any] | None = None

    async def post(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """As dockerd sends it: Go's json.Encoder output (trailing newline), or nothing."""
        assert self.client is not None
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode() + b"\n")
        resp = await self.client.post(path, data=data, headers={"Accept": ACCEPT})
        return resp.status, await resp.json()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


@pytest_asyncio.fixture
async def tracer() -> AsyncIterator[Tracer]:
    t = Tracer()
    t.client = TestClient(TestServer(build_app(t.recorder, t.ipam)))
    await t.client.start_server()
    try:
        yield t
    finally:
        await t.client.close()


async def test_activation_is_answered_and_recorded_with_its_empty_body(tracer: Tracer) -> None:
    tracer.recorder.step("docker network create -d tracer x")
    assert await tracer.post("/Plugin.Activate") == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
    status, caps = await tracer.post("/NetworkDriver.GetCapabilities")
    assert status == 200 and caps["Scope"] == "local"
    assert tracer.lines() == [
        {"step": "docker network create -d tracer x"},
        {"call": "/Plugin.Activate", "body": None, "accept": ACCEPT, "content_length": "0"},
        {"call": "/NetworkDriver.GetCapabilities", "body": None, "accept": ACCEPT, "content_length": "0"},
    ]
    assert tracer.recorder.calls == 2


async def test_bodies_are_recorded_verbatim_with_their_length(tracer: Tracer) -> None:
    body = {"NetworkID": "ab" * 32, "Options": {"com.docker.network.generic": {"mtu": "1400"}},
            "IPv4Data": [{"AddressSpace": "local", "Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}], "IPv6Data": []}
    assert await tracer.post("/NetworkDriver.CreateNetwork", body) == (200, {})
    (line,) = tracer.lines()
    assert line == {"call": "/NetworkDriver.CreateNetwork", "body": body, "accept": ACCEPT,
                    "content_length": str(len(json.dumps(body)) + 1)}


async def test_ipam_answers_as_dockerd_needs(tracer: Tracer) -> None:
    status, auto = await tracer.post("/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "", "SubPool": "",
                                                                 "Options": {}, "V6": False})
    assert (status, auto) == (200, {"PoolID": "10.99.0.0/24", "Pool": "10.99.0.0/24", "Data": {}})
    _, v6 = await tracer.post("/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "", "V6": True})
    assert v6["Pool"] == "fd99::/64"
    _, pool = await tracer.post("/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.20.0.0/16",
                                                            "SubPool": "10.20.5.0/24", "Options": {}, "V6": False})
    pid = pool["PoolID"]
    gateway = {"RequestAddressType": "com.docker.network.gateway"}
    assert await tracer.post("/IpamDriver.RequestAddress", {"PoolID": pid, "Address": "", "Options": gateway}) == (
        200, {"Address": "10.20.0.1/16", "Data": {}})
    explicit = {"PoolID": pid, "Address": "10.20.0.10", "Options": None}
    assert (await tracer.post("/IpamDriver.RequestAddress", explicit))[1]["Address"] == "10.20.0.10/16"
    auto_ip = {"PoolID": pid, "Address": "", "Options": {"com.docker.network.endpoint.macaddress": "02:42:0a:00:00:02"}}
    assert (await tracer.post("/IpamDriver.RequestAddress", auto_ip))[1]["Address"] == "10.20.5.0/16"
    assert (await tracer.post("/IpamDriver.RequestAddress", auto_ip))[1]["Address"] == "10.20.5.1/16"
    assert await tracer.post("/IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.20.5.0"}) == (200, {})
    assert (await tracer.post("/IpamDriver.RequestAddress", auto_ip))[1]["Address"] == "10.20.5.0/16"
    assert await tracer.post("/IpamDriver.ReleasePool", {"PoolID": pid}) == (200, {})
    assert pid not in tracer.ipam.pools
    assert [line["call"] for line in tracer.lines()].count("/IpamDriver.RequestAddress") == 5


async def test_a_restarted_tracer_takes_a_pool_up_again_from_its_id(tracer: Tracer) -> None:
    """dockerd goes on using a network after the tracer restarted: the PoolID is its CIDR."""
    body = {"PoolID": "10.70.0.0/24", "Address": "", "Options": {}}
    assert await tracer.post("/IpamDriver.RequestAddress", body) == (200, {"Address": "10.70.0.1/24", "Data": {}})


async def test_errors_are_answered_as_a_plugin_would_and_still_recorded(tracer: Tracer) -> None:
    status, reply = await tracer.post("/NetworkDriver.NoSuchCall", {"x": 1})
    assert status == 404 and "NoSuchCall" in reply["Err"]
    status, reply = await tracer.post("/IpamDriver.RequestAddress", {"PoolID": "not-a-pool", "Address": ""})
    assert status == 500 and "not-a-pool" in reply["Err"]
    status, reply = await tracer.post("/IpamDriver.RequestPool", raw=b"{not json")
    assert status == 500
    assert [line["call"] for line in tracer.lines()] == [
        "/NetworkDriver.NoSuchCall", "/IpamDriver.RequestAddress", "/IpamDriver.RequestPool"]
    assert tracer.lines()[2]["body"] == "{not json"


async def test_nothing_is_written_while_not_recording(tracer: Tracer) -> None:
    tracer.recorder.recording = False
    tracer.recorder.step("cleanup")
    assert (await tracer.post("/NetworkDriver.DeleteNetwork", {"NetworkID": "ab" * 32}))[0] == 200
    assert tracer.out.getvalue() == "" and tracer.recorder.calls == 0


def test_the_suite_engine_list_is_read() -> None:
    engines = suite_engines()
    assert "20.10" in engines and all(e[0].isdigit() for e in engines)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("engine", suite_engines())
def test_every_engine_of_the_suite_has_its_traces_made_by_this_script(engine: str, scenario: str) -> None:
    name = f"docker-{engine}-{scenario}.jsonl"
    assert (TRACES / name).is_file(), f"{TRACES / name} missing: run tools/tracer/record-engines.sh {engine}"
    lines = load_recording(name)
    (header,) = [line["tracer"] for line in lines if "tracer" in line]
    assert header["scenario"] == scenario and header["engine"].startswith(engine + "."), header
    steps: list[Step] = list(SCENARIOS[scenario])
    image = header.get("image", "local/busybox:latest")
    assert [line["step"] for line in lines if "step" in line] == [s.text(image) for s in steps]
    calls = {line["call"] for line in lines if "call" in line}
    assert {"/IpamDriver.RequestAddress", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join"} <= calls
