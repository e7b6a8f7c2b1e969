"""The HTTP surface, served in-process by aiohttp exactly as the daemon serves
it (build_app over the real SQLite store and the FakeDataplane)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import stat
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import netaddr
import pytest
from aiohttp import ClientSession, UnixConnector, web
from aiohttp.test_utils import TestClient, TestServer
from unit_helpers import GATEWAY_OPTS, load_recording

from pynetdrv.config import Config
from pynetdrv.dataplane.fake import FakeDataplane
from pynetdrv.reconcile import reconcile
from pynetdrv.server import build_app, unix_site
from pynetdrv.store.sqlite import SQLiteStore

ACCEPT = "application/vnd.docker.plugins.v1.2+json"
NID = "a" * 64
EID = "b" * 64

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(store: SQLiteStore, dp: FakeDataplane, config: Config) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(store, dp, config))) as c:
        yield c


async def post(client: Client, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """POST like dockerd does: Accept v1.2, no Content-Type, JSON body (or empty)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode() + b"\n")
    async with client.post(path, data=data, headers={"Accept": ACCEPT}, skip_auto_headers={"Content-Type"}) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text and resp.status != 404 else text)


async def raw_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes = b"",
                   host: str = "") -> tuple[int, dict[str, str], bytes]:
    """A byte-exact Go-style request: empty Host header (Docker up to
    20.10.25), no Content-Type, explicit Content-Length."""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\nAccept: {ACCEPT}\r\nAccept-Encoding: gzip\r\n"
        "Connection: close\r\n\r\n".encode() + body
    )
    await writer.drain()
    status_line = (await reader.readline()).decode()
    headers = {}
    while (line := (await reader.readline()).decode().strip()):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    payload = await reader.readexactly(int(headers["content-length"]))
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1]), headers, payload


# Activation and the empty-body calls ----------------------------------------------

async def test_activate_returns_both_interfaces(client: Client) -> None:
    status, body = await post(client, "/Plugin.Activate")
    assert status == 200
    assert body == {"Implements": ["NetworkDriver", "IpamDriver"]}


EMPTY_CALLS = {
    "/Plugin.Activate": {"Implements": ["NetworkDriver", "IpamDriver"]},
    "/NetworkDriver.GetCapabilities": {"Scope": "local", "ConnectivityScope": "local"},
    "/IpamDriver.GetCapabilities": {"RequiresMACAddress": False, "RequiresRequestReplay": False},
    "/IpamDriver.GetDefaultAddressSpaces": {"LocalDefaultAddressSpace": "local", "GlobalDefaultAddressSpace": "global"},
}


@pytest.mark.parametrize("host", ["", "plugin.moby.localhost"])
@pytest.mark.parametrize("path", sorted(EMPTY_CALLS))
async def test_empty_body_without_content_type_is_accepted(client: Client, path: str, host: str) -> None:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    status, _, payload = await raw_http(reader, writer, path, host=host)
    assert status == 200, payload
    assert json.loads(payload) == EMPTY_CALLS[path]


async def test_address_spaces_follow_config(store: SQLiteStore, dp: FakeDataplane) -> None:
    cfg = Config(local_address_space="here", global_address_space="everywhere")
    async with TestClient(TestServer(build_app(store, dp, cfg))) as c:
        status, body = await post(c, "/IpamDriver.GetDefaultAddressSpaces")
    assert (status, body) == (200, {"LocalDefaultAddressSpace": "here", "GlobalDefaultAddressSpace": "everywhere"})


async def test_empty_calls_ignore_a_json_body_too(client: Client) -> None:
    status, body = await post(client, "/NetworkDriver.GetCapabilities", {"Unexpected": 1})
    assert (status, body["Scope"]) == (200, "local")


# Errors ----------------------------------------------------------------------------

async def test_unknown_path_is_404(client: Client) -> None:
    status, _ = await post(client, "/NetworkDriver.NoSuchCall", {})
    assert status == 404
    status, _ = await post(client, "/VolumeDriver.Create", {"Name": "x"})
    assert status == 404


async def test_malformed_json_is_400_naming_the_call(client: Client) -> None:
    status, body = await post(client, "/NetworkDriver.CreateNetwork", raw=b'{"NetworkID": "x",')
    assert status == 400
    assert "NetworkDriver.CreateNetwork" in body["Err"]


async def test_non_object_json_is_400(client: Client) -> None:
    status, body = await post(client, "/IpamDriver.RequestPool", raw=b"[1, 2]")
    assert status == 400
    assert "IpamDriver.RequestPool" in body["Err"] and "object" in body["Err"]


async def test_wrong_type_is_400_naming_the_field(client: Client, store: SQLiteStore) -> None:
    status, body = await post(client, "/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "", "V6": "yes"})
    assert status == 400
    assert "V6" in body["Err"] and "IpamDriver.RequestPool" in body["Err"]
    assert await store.list_pools() == []


async def test_missing_network_id_is_400(client: Client, dp: FakeDataplane) -> None:
    status, body = await post(client, "/NetworkDriver.CreateNetwork", {"Options": {}, "IPv4Data": [], "IPv6Data": []})
    assert status == 400
    assert "NetworkID" in body["Err"]
    assert dp.links == {}
    status, body = await post(client, "/NetworkDriver.DeleteNetwork", {})
    assert status == 400 and "NetworkID" in body["Err"]


ERROR_CASES = [
    ("/NetworkDriver.CreateNetwork", b"not json", 400),
    ("/NetworkDriver.CreateNetwork", b"\xff\xfe", 400),
    ("/NetworkDriver.CreateNetwork", b'"a string"', 400),
    ("/NetworkDriver.CreateNetwork", b'{"NetworkID": 5}', 400),
    ("/NetworkDriver.CreateNetwork", b'{"NetworkID": ""}', 400),
    ("/NetworkDriver.CreateNetwork",
     json.dumps({"NetworkID": NID, "Options": {"com.docker.network.generic": {"bogus": "1"}}}).encode(), 400),
    ("/NetworkDriver.CreateEndpoint", json.dumps({"NetworkID": NID, "EndpointID": EID}).encode(), None),
    ("/NetworkDriver.EndpointOperInfo", json.dumps({"NetworkID": NID, "EndpointID": EID}).encode(), None),
    ("/NetworkDriver.Join", json.dumps({"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/x"}).encode(), None),
    ("/NetworkDriver.ProgramExternalConnectivity", json.dumps({"NetworkID": NID, "EndpointID": EID}).encode(), None),
    ("/IpamDriver.RequestAddress", json.dumps({"PoolID": "local/10.9.9.0/24", "Address": ""}).encode(), None),
    ("/IpamDriver.RequestAddress", b'{"Address": ""}', 400),
    ("/IpamDriver.RequestPool", json.dumps({"Pool": "10.0.0.1/24"}).encode(), 400),
    ("/IpamDriver.RequestPool", json.dumps({"Pool": "", "SubPool": "10.0.0.0/24"}).encode(), 400),
    ("/IpamDriver.RequestPool", json.dumps({"Pool": "10.0.0.0/24", "Options": {"k": 1}}).encode(), 400),
    ("/IpamDriver.ReleaseAddress", b'{"PoolID": "x"}', 400),
]


@pytest.mark.parametrize(("path", "raw", "want"), ERROR_CASES,
                         ids=[f"{p.lstrip('/')}-{i}" for i, (p, _, _) in enumerate(ERROR_CASES)])
async def test_every_error_is_non_200_with_json_err(client: Client, path: str, raw: bytes,
                                                     want: int | None) -> None:
    """``want`` None: any error status but 404 (which Docker reads as 'not
    implemented', or as success for the connectivity calls)."""
    status, body = await post(client, path, raw=raw)
    if want is None:
        assert 400 <= status < 600 and status != 404
    else:
        assert status == want
    assert isinstance(body, dict) and set(body) == {"Err"}
    assert isinstance(body["Err"], str) and body["Err"]


async def test_unknown_objects_are_never_404(client: Client) -> None:
    """404 means 'not implemented' to Docker, and success for
    Program/RevokeExternalConnectivity: an unknown endpoint must not be 404."""
    for path in ("/NetworkDriver.EndpointOperInfo", "/NetworkDriver.ProgramExternalConnectivity"):
        status, body = await post(client, path, {"NetworkID": NID, "EndpointID": EID})
        assert status == 500 and EID[:12] in body["Err"]


async def test_overlapping_pool_over_http_is_an_error_naming_both(client: Client) -> None:
    assert (await post(client, "/IpamDriver.RequestPool", {"Pool": "10.1.0.0/16"}))[0] == 200
    status, body = await post(client, "/IpamDriver.RequestPool", {"Pool": "10.1.2.0/24"})
    assert status == 500
    assert "10.1.2.0/24" in body["Err"] and "10.1.0.0/16" in body["Err"]


async def test_success_replies_are_json_objects_even_when_empty(client: Client) -> None:
    status, body = await post(client, "/NetworkDriver.DeleteNetwork", {"NetworkID": NID})
    assert (status, body) == (200, {})
    status, body = await post(client, "/NetworkDriver.DiscoverNew",
                              {"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.2", "Self": True}})
    assert (status, body) == (200, {})


async def test_full_create_run_remove_cycle_over_http(client: Client, dp: FakeDataplane,
                                                      store: SQLiteStore) -> None:
    status, pool = await post(client, "/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "", "V6": False})
    assert status == 200 and pool["Pool"] == "10.200.0.0/24" and pool["Data"] == {}
    status, gw = await post(client, "/IpamDriver.RequestAddress",
                            {"PoolID": pool["PoolID"], "Address": "", "Options": GATEWAY_OPTS})
    assert (status, gw["Address"]) == (200, "10.200.0.1/24")
    status, _ = await post(client, "/NetworkDriver.CreateNetwork", {
        "NetworkID": NID, "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
        "IPv4Data": [{"AddressSpace": "local", "Pool": pool["Pool"], "Gateway": gw["Address"]}], "IPv6Data": []})
    assert status == 200
    status, addr = await post(client, "/IpamDriver.RequestAddress",
                              {"PoolID": pool["PoolID"], "Address": "", "Options": None})
    assert (status, addr["Address"]) == (200, "10.200.0.2/24")
    status, ep = await post(client, "/NetworkDriver.CreateEndpoint", {
        "NetworkID": NID, "EndpointID": EID,
        "Interface": {"Address": addr["Address"], "AddressIPv6": "", "MacAddress": ""},
        "Options": {}})
    assert status == 200
    mac = ep["Interface"]["MacAddress"]
    assert netaddr.EUI(mac).words[0] & 0x03 == 0x02
    assert ep["Interface"]["Address"] == "" and ep["Interface"]["AddressIPv6"] == ""
    status, join = await post(client, "/NetworkDriver.Join", {
        "NetworkID": NID, "EndpointID": EID, "SandboxKey": "/var/run/docker/netns/x", "Options": {}})
    assert status == 200
    assert join["Gateway"] == "10.200.0.1" and join["InterfaceName"]["DstPrefix"] == "eth"
    assert join["InterfaceName"]["SrcName"] in dp.links and join["DisableGatewayService"] is True
    status, info = await post(client, "/NetworkDriver.EndpointOperInfo", {"NetworkID": NID, "EndpointID": EID})
    assert status == 200 and info["Value"]["MacAddress"] == mac
    for path, body in [
        ("/NetworkDriver.Leave", {"NetworkID": NID, "EndpointID": EID}),
        ("/NetworkDriver.DeleteEndpoint", {"NetworkID": NID, "EndpointID": EID}),
        ("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.200.0.2"}),
        ("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.200.0.1"}),
        ("/IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]}),
        ("/NetworkDriver.DeleteNetwork", {"NetworkID": NID}),
    ]:
        assert (await post(client, path, body)) == (200, {}), path
    assert dp.links == {}
    assert await store.list_pools() == [] and await store.list_networks() == []


# The real unix socket ---------------------------------------------------------------

async def test_unix_site_mode_0660_serves_and_removes_socket(tmp_path: Path, store: SQLiteStore,
                                                             dp: FakeDataplane) -> None:
    sock = tmp_path / "run" / "pn.sock"
    sock.parent.mkdir()
    sock.write_text("stale leftover of a dead instance")
    async with unix_site(build_app(store, dp, Config()), sock):
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
        async with unix_site(build_app(store, dp, Config()), sock):
            assert sock.exists()
            raise RuntimeError("boom")
    assert not sock.exists()


# Replaying what Docker really sent ---------------------------------------------------

async def test_recorded_create_with_unsupported_o_keys_is_refused_by_name(client: Client, dp: FakeDataplane,
                                                                         store: SQLiteStore) -> None:
    """The 20.10 trace's n2 used ``-o mtu=1400 -o foo=bar``: pynetdrv refuses
    unknown -o keys by name instead of ignoring them."""
    creates = [line["body"] for line in load_recording("docker-20.10-calls.jsonl")
               if line.get("call") == "/NetworkDriver.CreateNetwork"]
    body = next(b for b in creates if b["Options"]["com.docker.network.generic"])
    status, reply = await post(client, "/NetworkDriver.CreateNetwork", body)
    assert status == 400
    assert "foo" in reply["Err"] and "mtu" in reply["Err"] and "com.docker.network.driver.mtu" in reply["Err"]
    assert dp.links == {} and await store.list_networks() == []


#: -o keys the recorded stand-in accepted, mapped to pynetdrv's (None: dropped).
O_KEYS = {"mtu": "com.docker.network.driver.mtu", "foo": None}


class Replayer:
    """Sends recorded calls to our server, translating the stand-in plugin's
    answers (PoolIDs, automatic addresses) into ours, and checks each reply
    and the resulting state."""

    def __init__(self, store: SQLiteStore, dp: FakeDataplane) -> None:
        self.store, self.dp = store, dp
        self.client: Client | None = None
        self.pool_ids: dict[str, str] = {}                    # recorded PoolID -> ours
        self.rec_nets: dict[str, netaddr.IPNetwork] = {}      # recorded PoolID -> recorded pool
        self.our_nets: dict[str, netaddr.IPNetwork] = {}      # recorded PoolID -> our pool
        self.unclaimed: deque[tuple[str, netaddr.IPNetwork, str]] = deque()
        self.pending: defaultdict[str, deque[str]] = defaultdict(deque)  # recorded PoolID -> our automatic IPs
        self.explicit: set[str] = set()
        # recorded IP -> our IPs, newest last: the stand-in lost its state when it
        # was restarted and handed out its gateway address again.
        self.addr_map: defaultdict[str, list[str]] = defaultdict(list)
        self.gateways: dict[str, dict[int, list[str]]] = {}  # network -> family -> our gateway IPs
        self.internal: set[str] = set()
        self.calls = 0

    async def start(self) -> None:
        self.client = TestClient(TestServer(build_app(self.store, self.dp, Config())))
        await self.client.start_server()

    async def stop(self) -> None:
        assert self.client is not None
        await self.client.close()

    def rid_for(self, pool_id: str) -> str:
        if pool_id not in self.pool_ids:
            assert self.unclaimed, f"recorded PoolID {pool_id} used before any RequestPool"
            ours, our_net, requested = self.unclaimed.popleft()
            self.pool_ids[pool_id] = ours
            self.our_nets[pool_id] = our_net
            self.rec_nets[pool_id] = netaddr.IPNetwork(requested or pool_id)
        return pool_id

    def rid_containing(self, ip: str) -> str | None:
        addr = netaddr.IPAddress(ip)
        for rid, rnet in self.rec_nets.items():
            if addr.version == rnet.version and addr in rnet:
                return rid
        return None

    def map_ip(self, ip: str) -> str:
        if self.addr_map.get(ip):
            return self.addr_map[ip][-1]
        rid = self.rid_containing(ip)
        if rid is None:
            return ip
        rnet, onet = self.rec_nets[rid], self.our_nets[rid]
        return str(netaddr.IPAddress(int(onet.first) + int(netaddr.IPAddress(ip)) - int(rnet.first), onet.version))

    def map_auto(self, cidr: str) -> str:
        """A CIDR Docker got from the stand-in's IPAM: ours for the same request."""
        ip = cidr.split("/")[0]
        rid = self.rid_containing(ip)
        if rid is not None and ip not in self.explicit and self.pending[rid]:
            self.addr_map[ip].append(self.pending[rid].popleft())
        if rid is None:
            return cidr
        return f"{self.map_ip(ip)}/{self.our_nets[rid].prefixlen}"

    async def send(self, call: str, body: Any) -> None:
        assert self.client is not None
        body = copy.deepcopy(body)
        handler = getattr(self, "_" + call.rsplit(".", 1)[1], None)
        before = await handler(body) if handler else None
        status, reply = await post(self.client, call, body)
        self.calls += 1
        assert status == 200, f"{call} {body} -> {status} {reply}"
        assert isinstance(reply, dict)
        after = getattr(self, "_after_" + call.rsplit(".", 1)[1], None)
        if after:
            await after(body, reply, before)

    # Per-call rewriting and checks.
    async def _RequestPool(self, body: dict[str, Any]) -> None:
        return None

    async def _after_RequestPool(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        our_net = netaddr.IPNetwork(reply["Pool"])
        if body["Pool"]:
            assert our_net == netaddr.IPNetwork(body["Pool"])
        else:
            assert our_net.version == (6 if body["V6"] else 4)
        assert await self.store.get_pool(reply["PoolID"]) is not None
        self.unclaimed.append((reply["PoolID"], our_net, body["Pool"]))

    async def _RequestAddress(self, body: dict[str, Any]) -> str:
        rid = self.rid_for(body["PoolID"])
        body["PoolID"] = self.pool_ids[rid]
        if body["Address"]:
            self.explicit.add(body["Address"])
            body["Address"] = self.map_ip(body["Address"])
        return rid

    async def _after_RequestAddress(self, body: dict[str, Any], reply: dict[str, Any], rid: str) -> None:
        ip, _, prefix = reply["Address"].partition("/")
        assert int(prefix) == self.our_nets[rid].prefixlen
        assert netaddr.IPAddress(ip) in self.our_nets[rid]
        if body["Address"]:
            assert ip == body["Address"]
        else:
            self.pending[rid].append(ip)
        assert ip in [a.address for a in await self.store.allocations(body["PoolID"])]

    async def _ReleaseAddress(self, body: dict[str, Any]) -> tuple[bool, str]:
        rid = self.rid_for(body["PoolID"])
        recorded = body["Address"]
        body["PoolID"] = self.pool_ids[rid]
        body["Address"] = self.map_ip(recorded)
        held = [a.address for a in await self.store.allocations(body["PoolID"])]
        return body["Address"] in held, recorded

    async def _after_ReleaseAddress(self, body: dict[str, Any], reply: dict[str, Any],
                                    before: tuple[bool, str]) -> None:
        held, recorded = before
        assert reply == {}
        assert held, f"we never handed out {body['Address']} in {body['PoolID']}: the replay lost track"
        assert body["Address"] not in [a.address for a in await self.store.allocations(body["PoolID"])]
        if self.addr_map.get(recorded):
            self.addr_map[recorded].pop()

    async def _ReleasePool(self, body: dict[str, Any]) -> None:
        body["PoolID"] = self.pool_ids[self.rid_for(body["PoolID"])]

    async def _after_ReleasePool(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        assert await self.store.get_pool(body["PoolID"]) is None

    async def _CreateNetwork(self, body: dict[str, Any]) -> None:
        generic = body["Options"]["com.docker.network.generic"]
        body["Options"]["com.docker.network.generic"] = {O_KEYS[k]: v for k, v in generic.items() if O_KEYS.get(k, k)}
        gateways: dict[int, list[str]] = {4: [], 6: []}
        for family in ("IPv4Data", "IPv6Data"):
            for data in body[family]:
                rid = next((r for r, n in self.rec_nets.items() if n == netaddr.IPNetwork(data["Pool"])), None)
                if rid is not None:
                    data["Pool"] = str(self.our_nets[rid])
                if "Gateway" in data:
                    data["Gateway"] = self.map_auto(data["Gateway"])
                    gw = netaddr.IPNetwork(data["Gateway"])
                    gateways[gw.version].append(str(gw.ip))
                for name, aux in data.get("AuxAddresses", {}).items():
                    data["AuxAddresses"][name] = f"{self.map_ip(aux.split('/')[0])}/{aux.split('/')[1]}"
        self.gateways[body["NetworkID"]] = gateways
        if body["Options"].get("com.docker.network.internal"):
            self.internal.add(body["NetworkID"])

    async def _after_CreateNetwork(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        assert reply == {}
        rec = await self.store.get_network(body["NetworkID"])
        assert rec is not None and rec.bridge in self.dp.links
        mtu = body["Options"]["com.docker.network.generic"].get("com.docker.network.driver.mtu")
        assert rec.mtu == (int(mtu) if mtu else None)
        gws = self.gateways[body["NetworkID"]]
        assert {g.split("/")[0] for g in rec.gateways} == set(gws[4] + gws[6])

    async def _CreateEndpoint(self, body: dict[str, Any]) -> None:
        iface = body["Interface"]
        for key in ("Address", "AddressIPv6"):
            if iface[key]:
                iface[key] = self.map_auto(iface[key])

    async def _after_CreateEndpoint(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        # Docker gave a MAC (RequiresMACAddress=false still gets one from
        # the engine here): we must not echo any field back.
        assert body["Interface"]["MacAddress"]
        assert reply.get("Interface") is None
        ep = await self.store.get_endpoint(body["EndpointID"])
        assert ep is not None and ep.host_ifname in self.dp.links and ep.peer_ifname in self.dp.links
        assert ep.mac == body["Interface"]["MacAddress"]

    async def _after_Join(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        ep = await self.store.get_endpoint(body["EndpointID"])
        assert ep is not None and ep.sandbox_key == body["SandboxKey"]
        assert reply["InterfaceName"] == {"SrcName": ep.peer_ifname, "DstPrefix": "eth"}
        if body["NetworkID"] in self.internal:
            assert (reply["Gateway"], reply["GatewayIPv6"]) == ("", "")
        else:
            gws = self.gateways[body["NetworkID"]]
            assert reply["Gateway"] in gws[4]
            assert reply["GatewayIPv6"] == (gws[6][0] if ep.address_v6 else "")

    async def _after_DeleteEndpoint(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        assert await self.store.get_endpoint(body["EndpointID"]) is None

    async def _after_DeleteNetwork(self, body: dict[str, Any], reply: dict[str, Any], _: Any) -> None:
        assert await self.store.get_network(body["NetworkID"]) is None
        assert not [link for link in self.dp.links.values() if link.alias and body["NetworkID"] in link.alias]


@pytest.mark.parametrize("recording", ["docker-20.10-calls.jsonl", "docker-26.1-calls.jsonl",
                                       "docker-20.10-daemon-restart.jsonl"])
async def test_replay_recorded_docker_session(tmp_path: Path, recording: str) -> None:
    """Network create with our IPAM, container run, connect, disconnect,
    restart, network rm (and a plugin restart in the middle): every call 200."""
    db = tmp_path / "state.db"
    dp = FakeDataplane()
    store = SQLiteStore(db)
    await store.open()
    r = Replayer(store, dp)
    await r.start()
    try:
        for line in load_recording(recording):
            if line.get("step") == "plugin killed and restarted":
                await r.stop()
                await store.close()
                store = r.store = SQLiteStore(db)
                await store.open()
                report = await reconcile(store, dp)
                assert report.errors == [] and report.links_removed == [] and report.endpoints_forgotten == []
                await r.start()
            elif "call" in line:
                await r.send(line["call"], line["body"])
        assert r.calls == sum("call" in line for line in load_recording(recording))
        if recording == "docker-20.10-daemon-restart.jsonl":
            # The network and the re-created container stay.
            assert len(await store.list_networks()) == 1 and len(await store.list_endpoints()) == 1
            assert len(dp.links) == 3
        else:
            assert await store.list_pools() == []
            assert await store.list_networks() == [] and await store.list_endpoints() == []
            assert dp.links == {}
    finally:
        await r.stop()
        await store.close()
