"""Every request body a real dockerd sent (each engine the suite runs on, recorded
by the stand-in plugin tools/tracer into tests/fixtures/traces) validates against the model the route table assigns
to its
path, and the fields that matter come out of the model unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from unit_helpers import RECORDINGS, load_recording

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.api.base_model import Wire
from pynetdrv.api.plugin import plugin_routes
from pynetdrv.api.routes import Route
from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

EMPTY_BODY_CALLS = {
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
}


def _routes() -> dict[str, Route]:
    # The services are never called here; an unopened store is enough.
    store = SQLiteStore(":memory:")
    dp = FakeDataplane()
    routes = plugin_routes(NetworkService(store, dp, FakeFirewall(), FakeReserver()),
                           IpamService(store, Config(), dp.host_routes))
    return {r.path: r for r in routes}


ROUTES = _routes()


def _recorded_calls() -> list[Any]:
    params = []
    for name in RECORDINGS:
        for n, line in enumerate(load_recording(name), start=1):
            if "call" in line:
                params.append(pytest.param(line, id=f"{name.removesuffix('.jsonl')}:{n}:{line['call'].lstrip('/')}"))
    return params


CALLS = _recorded_calls()


def assert_covers(recorded: Any, dumped: Any, where: str = "body") -> None:
    """Every key Docker sent is in the parsed model with the same value."""
    if isinstance(recorded, dict):
        assert isinstance(dumped, dict), f"{where}: expected an object, model gave {dumped!r}"
        for key, value in recorded.items():
            assert key in dumped, f"{where}.{key} sent by Docker is not a field of the model"
            assert_covers(value, dumped[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(dumped, list) and len(dumped) == len(recorded), f"{where}: {dumped!r} != {recorded!r}"
        for i, (r, d) in enumerate(zip(recorded, dumped, strict=True)):
            assert_covers(r, d, f"{where}[{i}]")
    else:
        assert dumped == recorded and type(dumped) is type(recorded), f"{where}: {dumped!r} != {recorded!r}"


def test_recordings_cover_the_main_calls() -> None:
    assert RECORDINGS, "no recorded traces in tests/fixtures/traces"
    seen = {p.values[0]["call"] for p in CALLS}
    for call in ("/IpamDriver.RequestPool", "/IpamDriver.RequestAddress", "/NetworkDriver.CreateNetwork",
                 "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join", "/NetworkDriver.Leave",
                 "/NetworkDriver.DeleteEndpoint", "/NetworkDriver.DeleteNetwork", "/IpamDriver.ReleasePool",
                 "/Plugin.Activate"):
        assert call in seen


@pytest.mark.parametrize("line", CALLS)
def test_recorded_body_validates(line: dict[str, Any]) -> None:
    path, body = line["call"], line["body"]
    assert path in ROUTES, f"Docker calls {path} but the route table has no route for it"
    route = ROUTES[path]
    if route.request is None:
        assert path in EMPTY_BODY_CALLS
        assert body in (None, {}), f"{path} carried a body {body!r} the route ignores"
        if "content_length" in line:
            assert line["content_length"] == "0"
        return
    assert path not in EMPTY_BODY_CALLS
    assert isinstance(body, dict)
    model = route.request.model_validate(body)
    assert isinstance(model, Wire)
    assert_covers(body, model.model_dump(mode="json"))


def _bodies(call: str) -> list[dict[str, Any]]:
    return [p.values[0]["body"] for p in CALLS if p.values[0]["call"] == call]


def test_create_network_gateway_and_aux_are_cidr_strings() -> None:
    seen_aux = seen_v6 = False
    for body in _bodies("/NetworkDriver.CreateNetwork"):
        req = ROUTES["/NetworkDriver.CreateNetwork"].request.model_validate(body)  # type: ignore[union-attr]
        assert isinstance(req, nm.CreateNetworkRequest)
        assert req.NetworkID == body["NetworkID"] and len(req.NetworkID) == 64
        for family in ("IPv4Data", "IPv6Data"):
            for parsed, raw in zip(getattr(req, family) or [], body[family], strict=True):
                assert isinstance(parsed, nm.IPAMData)
                assert parsed.Gateway == raw["Gateway"]
                assert "/" in parsed.Gateway and parsed.Gateway.split("/")[1] == parsed.Pool.split("/")[1]
                for name, aux in parsed.AuxAddresses.items():
                    assert aux == raw["AuxAddresses"][name] and "/" in aux
                    seen_aux = True
                seen_v6 |= family == "IPv6Data"
        generic = req.Options["com.docker.network.generic"]
        assert isinstance(generic, dict)
        assert req.Options["com.docker.network.enable_ipv6"] in (True, False)
    assert seen_aux and seen_v6, "the recordings should include aux addresses and an IPv6 pool"


def test_create_network_options_keep_internal_flag_and_generic_strings() -> None:
    bodies = _bodies("/NetworkDriver.CreateNetwork")
    internal = [b for b in bodies if b["Options"].get("com.docker.network.internal")]
    assert internal, "the recordings include an --internal network"
    req = nm.CreateNetworkRequest.model_validate(internal[0])
    assert req.Options["com.docker.network.internal"] is True
    with_o = [b for b in bodies if b["Options"]["com.docker.network.generic"]]
    req = nm.CreateNetworkRequest.model_validate(with_o[0])
    assert req.Options["com.docker.network.generic"] == {"foo": "bar", "mtu": "1400"}


def test_create_endpoint_interface_fields() -> None:
    for body in _bodies("/NetworkDriver.CreateEndpoint"):
        req = nm.CreateEndpointRequest.model_validate(body)
        assert req.Interface is not None
        assert req.Interface.MacAddress == body["Interface"]["MacAddress"] != ""
        assert req.Interface.Address == body["Interface"]["Address"] and "/" in req.Interface.Address
        assert req.Interface.AddressIPv6 == body["Interface"]["AddressIPv6"]
        assert req.Options["com.docker.network.portmap"] == body["Options"]["com.docker.network.portmap"]


def test_create_endpoint_portmap_with_published_ports_is_kept_verbatim() -> None:
    bodies = [b for b in _bodies("/NetworkDriver.CreateEndpoint") if b["Options"]["com.docker.network.portmap"]]
    assert bodies
    req = nm.CreateEndpointRequest.model_validate(bodies[0])
    ports = req.Options["com.docker.network.portmap"]
    assert {(p["Proto"], p["Port"], p["HostPort"]) for p in ports} >= {(6, 80, 8080), (17, 53, 9999)}


def test_request_address_options_none_vs_gateway_vs_mac() -> None:
    kinds = set()
    for body in _bodies("/IpamDriver.RequestAddress"):
        req = im.RequestAddressRequest.model_validate(body)
        assert req.PoolID == body["PoolID"] and req.Address == body["Address"]
        if body["Options"] is None:
            assert req.Options is None
            kinds.add("aux")
        elif im.REQUEST_ADDRESS_TYPE in body["Options"]:
            assert req.Options == {im.REQUEST_ADDRESS_TYPE: im.GATEWAY_TYPE}
            kinds.add("gateway")
        else:
            assert req.Options is not None
            key = "com.docker.network.endpoint.macaddress"
            assert req.Options[key] == body["Options"][key]
            kinds.add("container")
    assert kinds == {"aux", "gateway", "container"}


def test_request_pool_fields() -> None:
    bodies = _bodies("/IpamDriver.RequestPool")
    parsed = [im.RequestPoolRequest.model_validate(b) for b in bodies]
    assert any(p.Pool == "" and p.V6 is False for p in parsed), "automatic pool request"
    assert any(p.V6 is True and p.Pool == "fd00:30::/64" for p in parsed)
    sub = [p for p in parsed if p.SubPool]
    assert sub and sub[0].SubPool == "10.20.5.0/24" and sub[0].Options == {"ipamkey": "ipamval"}


def test_join_sandbox_key_and_options() -> None:
    for body in _bodies("/NetworkDriver.Join"):
        req = nm.JoinRequest.model_validate(body)
        assert req.SandboxKey == body["SandboxKey"] and "/netns/" in req.SandboxKey
        assert req.Options == body["Options"]


def test_release_calls_parse() -> None:
    for body in _bodies("/IpamDriver.ReleaseAddress"):
        req = im.ReleaseAddressRequest.model_validate(body)
        assert (req.PoolID, req.Address) == (body["PoolID"], body["Address"])
        assert "/" not in req.Address
    for body in _bodies("/IpamDriver.ReleasePool"):
        assert im.PoolRef.model_validate(body).PoolID == body["PoolID"]
