"""The HTTP adapter, served in-process by aiohttp exactly as the daemon serves
it (build_app over the real SQLite store and the FakeDataplane): activation,
the empty-body calls, how errors map to statuses and JSON, and a full
create-run-remove cycle."""

from __future__ import annotations

import asyncio
import json

import netaddr
import pytest
from aiohttp.test_utils import TestClient, TestServer
from http_helpers import Client, post, raw_http
from unit_helpers import GATEWAY_OPTS

from pynetdrv.config import Config
from pynetdrv.server import build_app
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

NID = "a" * 64
EID = "b" * 64


# Activation and the empty-body calls ----------------------------------------------

async def test_activate_returns_both_interfaces(client: Client) -> None:
    status, body = await post(client, "/Plugin.Activate")
    assert status == 200
    assert body == {"Implements": ["NetworkDriver", "IpamDriver"]}


EMPTY_CALLS = {
    "/Plugin.Activate": {"Implements": ["NetworkDriver", "IpamDriver"]},
    "/NetworkDriver.GetCapabilities": {"Scope": "local", "ConnectivityScope": "local", "GwAllocChecker": True},
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
    async with TestClient(TestServer(build_app(store, dp, cfg, FakeFirewall(), FakeReserver()))) as c:
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
    (
        "/NetworkDriver.CreateNetwork",
        json.dumps(
            {
                "NetworkID": NID,
                "Options": {"com.docker.network.generic": {"com.docker.network.bridge.enable_icc": "maybe"}},
            }
        ).encode(),
        400,
    ),
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
