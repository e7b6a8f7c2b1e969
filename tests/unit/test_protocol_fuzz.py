"""Protocol fuzzing over the real unix socket (hypothesis).

The app the daemon serves (``build_app`` in ``unix_site``, SQLite state file,
FakeDataplane) gets thousands of random and malformed requests on every path:
random bytes, a known field of the wrong type, random values of the right
types, deep nesting, bodies over the size limit, odd Content-Types and
Content-Encodings, empty bodies, unknown paths, other methods than POST.

After every request:
- the answer is JSON with the protocol's content type;
- a non-200 answer is a 4xx/5xx ``{"Err": "<non-empty>"}`` and the state
  (store and fake kernel) is exactly what it was before the request;
- requests that cannot be valid (not JSON, wrong types, too deep, too big,
  missing required fields, unknown path, not POST) are never 200.
At the end of each test the daemon still serves a full create/join/delete
cycle.  Each test prints how many requests it sent (``pytest -s``).

PYNETDRV_LONG=1 sends ten times as many.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from plugin_harness import PluginHarness, Reply, scaled
from pydantic import BaseModel

from pynetdrv.api import plugin
from pynetdrv.api.routes import CONTENT_TYPE, MAX_BODY, MAX_DEPTH
from pynetdrv.config import Config
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

POOL = "10.227.0.0/24"
POOL_ID = f"local/{POOL}"
NID = "f0" * 32
EID = "e1" * 32
KNOWN_IDS = [NID, EID, POOL_ID, "", "x", "f0" * 33, "\x00", "ü" * 70, "../../etc/passwd", "a" * 5000]


def _routes() -> list[Any]:
    from pynetdrv.store.sqlite import SQLiteStore

    store = SQLiteStore(":memory:")  # never opened: only the route table is read
    return plugin.plugin_routes(NetworkService(store, FakeDataplane(), FakeFirewall(), FakeReserver()),
                                IpamService(store, Config(), FakeDataplane().host_routes))


ROUTES = {r.path: r.request for r in _routes()}
PATHS = sorted(ROUTES)
MODELLED = sorted(p for p, m in ROUTES.items() if m is not None)
BODYLESS = sorted(p for p, m in ROUTES.items() if m is None)
REQUIRED = sorted(p for p in MODELLED if any(f.is_required() for f in ROUTES[p].model_fields.values()))

COUNTS: dict[str, int] = {}


def examples(ci: int) -> settings:
    return settings(max_examples=scaled(ci, ci * 10), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# The plugin under test ----------------------------------------------------------

class Fuzzed:
    """The harness with a baseline: one pool with a gateway, one network, one
    joined endpoint, so rejected requests that name real objects are tested
    for leaving them alone."""

    def __init__(self) -> None:
        self.h = PluginHarness()
        self.baseline: dict[str, Any] = {}
        self._seed()

    def _seed(self) -> None:
        ok = [
            self.h.call(
                "/IpamDriver.RequestPool",
                {"AddressSpace": "local", "Pool": POOL, "SubPool": "", "Options": {}, "V6": False},
            ),
            self.h.call(
                "/IpamDriver.RequestAddress",
                {"PoolID": POOL_ID, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}},
            ),
            self.h.call("/NetworkDriver.CreateNetwork", network_body(NID)),
            self.h.call("/IpamDriver.RequestAddress", {"PoolID": POOL_ID, "Address": "", "Options": None}),
            self.h.call(
                "/NetworkDriver.CreateEndpoint",
                {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.227.0.2/24"}, "Options": {}},
            ),
            self.h.call(
                "/NetworkDriver.Join", {"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/x", "Options": {}}
            ),
        ]
        assert [r.status for r in ok] == [200] * len(ok), ok
        self.baseline = self.h.snapshot()

    def send(self, path: str, body: Any = None, *, must_fail: bool = False, **kw: Any) -> Reply:
        reply = self.h.call(path, body, **kw)
        check_reply(path, reply)
        if reply.status == 200:
            assert not must_fail, f"{path} accepted a request that cannot be valid: {body!r:.300} {kw!r:.300}"
            self.baseline = self.h.snapshot()
        else:
            assert self.h.snapshot() == self.baseline, f"rejected {path} request changed state: {reply.text:.300}"
        return reply

    def still_serves(self) -> None:
        """A full cycle on a fresh network still works after the fuzzing."""
        nid = "c0" * 32
        pool = self.h.call("/IpamDriver.RequestPool", {"Pool": "10.227.255.0/24"})
        assert pool.status == 200, pool
        pid = pool.json["PoolID"]
        addr = self.h.call("/IpamDriver.RequestAddress", {"PoolID": pid, "Address": ""})
        assert addr.status == 200, addr
        body = network_body(nid, pool="10.227.255.0/24", gateway="10.227.255.254/24")
        steps = [
            ("/Plugin.Activate", None),
            ("/NetworkDriver.CreateNetwork", body),
            (
                "/NetworkDriver.CreateEndpoint",
                {"NetworkID": nid, "EndpointID": nid, "Interface": {"Address": addr.json["Address"]}},
            ),
            ("/NetworkDriver.Join", {"NetworkID": nid, "EndpointID": nid, "SandboxKey": "/y"}),
            ("/NetworkDriver.Leave", {"NetworkID": nid, "EndpointID": nid}),
            ("/NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": nid}),
            ("/NetworkDriver.DeleteNetwork", {"NetworkID": nid}),
            ("/IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": addr.json["Address"].split("/")[0]}),
            ("/IpamDriver.ReleasePool", {"PoolID": pid}),
        ]
        for path, b in steps:
            r = self.h.call(path, b)
            assert r.status == 200, (path, r)


def network_body(nid: str, pool: str = POOL, gateway: str = "10.227.0.1/24") -> dict[str, Any]:
    return {"NetworkID": nid, "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": "local", "Pool": pool, "Gateway": gateway}], "IPv6Data": []}


def check_reply(path: str, reply: Reply) -> None:
    assert reply.content_type == CONTENT_TYPE, (
        f"{path}: {reply.status} answer is {reply.content_type}: {reply.text:.300}"
    )
    try:
        payload = json.loads(reply.text)
    except ValueError:
        pytest.fail(f"{path}: {reply.status} answer is not JSON: {reply.text:.300}")
    assert isinstance(payload, dict), payload
    if reply.status != 200:
        assert 400 <= reply.status < 600, reply
        err = payload.get("Err")
        assert isinstance(err, str) and err.strip(), f"{path}: {reply.status} answer without Err: {reply.text:.300}"
        assert "Traceback" not in err, err


@pytest.fixture
def fz(request: pytest.FixtureRequest) -> Iterator[Fuzzed]:
    f = Fuzzed()
    try:
        yield f
        f.still_serves()
    finally:
        sent = f.h.requests
        f.h.close()
        COUNTS[request.node.name] = sent
        print(f"\nprotocol fuzz {request.node.name}: {sent} requests sent over the unix socket")


# Strategies -----------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), st.sampled_from(KNOWN_IDS),
)
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12
)


def _origin(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def _is(tp: Any, kind: type) -> bool:
    return tp is kind or typing.get_origin(tp) is kind


def wrong_values(annotation: Any) -> st.SearchStrategy[Any] | None:
    """Values that are never valid for a field of this type (strict models)."""
    tp, optional = _origin(annotation)
    none = st.nothing() if optional else st.none()
    ints, floats, texts = (
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
    )
    lists, dicts = st.lists(json_scalars, max_size=3), st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
    if tp is str:
        return st.one_of(none, ints, floats, st.booleans(), lists, dicts)
    if tp is bool:
        return st.one_of(none, ints, texts, floats, lists, dicts)
    if tp is int:
        return st.one_of(none, texts, floats.filter(lambda f: not f.is_integer()), lists, dicts)
    if _is(tp, dict) or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return st.one_of(none, ints, texts, st.booleans(), lists)
    if _is(tp, list):
        return st.one_of(none, ints, texts, st.booleans(), dicts)
    return None  # Any: nothing is wrong


VALID_BASE: dict[str, dict[str, Any]] = {
    "/NetworkDriver.CreateNetwork": network_body("ab" * 32, "10.227.9.0/24", "10.227.9.1/24"),
    "/NetworkDriver.CreateEndpoint": {
        "NetworkID": NID,
        "EndpointID": "cd" * 32,
        "Interface": {"Address": "10.227.0.9/24"},
        "Options": {},
    },
    "/NetworkDriver.Join": {"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/z", "Options": {}},
    "/NetworkDriver.ProgramExternalConnectivity": {"NetworkID": NID, "EndpointID": EID, "Options": {}},
    "/NetworkDriver.AllocateNetwork": {"NetworkID": NID, "Options": {}, "IPv4Data": [], "IPv6Data": None},
    "/NetworkDriver.DiscoverNew": {"DiscoveryType": 1, "DiscoveryData": {}},
    "/NetworkDriver.DiscoverDelete": {"DiscoveryType": 1, "DiscoveryData": {}},
    "/IpamDriver.RequestPool": {
        "AddressSpace": "local",
        "Pool": "10.227.8.0/24",
        "SubPool": "",
        "Options": {},
        "V6": False,
    },
    "/IpamDriver.RequestAddress": {"PoolID": POOL_ID, "Address": "", "Options": None},
    "/IpamDriver.ReleaseAddress": {"PoolID": POOL_ID, "Address": "10.227.0.200"},
}


def valid_base(path: str) -> dict[str, Any]:
    if path in VALID_BASE:
        return dict(VALID_BASE[path])
    fields = ROUTES[path].model_fields
    return {k: (EID if k == "EndpointID" else NID if k == "NetworkID" else POOL_ID) for k in fields if k.endswith("ID")}


WRONG_FIELDS = [(p, name, s) for p in MODELLED for name, f in ROUTES[p].model_fields.items()
                if (s := wrong_values(f.annotation)) is not None]


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


# Tests ------------------------------------------------------------------------------

@examples(1000)
@given(path=st.sampled_from(MODELLED), body=st.binary(max_size=600))
def test_random_bytes_are_refused(fz: Fuzzed, path: str, body: bytes) -> None:
    assume(body.strip() and not _is_json_object(body))
    fz.send(path, raw=body, must_fail=True)


@examples(1000)
@given(data=st.data(), which=st.sampled_from(WRONG_FIELDS))
def test_a_field_of_the_wrong_type_is_a_400_naming_it(fz: Fuzzed, data: st.DataObject,
                                                       which: tuple[str, str, st.SearchStrategy[Any]]) -> None:
    path, name, wrong = which
    body = valid_base(path)
    body[name] = data.draw(wrong, label=name)
    reply = fz.send(path, body, must_fail=True)
    assert reply.status == 400 and name in reply.json["Err"], reply


@examples(1000)
@given(data=st.data(), path=st.sampled_from(MODELLED))
def test_random_values_of_the_right_shape(fz: Fuzzed, data: st.DataObject, path: str) -> None:
    """Right field names, random values: any answer, but JSON, and errors change nothing."""
    fields = ROUTES[path].model_fields
    body = {name: data.draw(st.one_of(json_values, st.sampled_from(KNOWN_IDS)), label=name)
            for name in fields if data.draw(st.booleans(), label=f"send {name}")}
    if data.draw(st.booleans(), label="start from a valid body"):
        body = {**valid_base(path), **body}
    fz.send(path, body)


@examples(150)
@given(path=st.sampled_from(MODELLED), depth=st.integers(MAX_DEPTH + 1, 300_000), kind=st.sampled_from("[{o"))
def test_deep_nesting_is_a_400(fz: Fuzzed, path: str, depth: int, kind: str) -> None:
    if kind == "[":
        raw = b'{"Options": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "{":
        raw = b'{"Options": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    else:  # under a field typed Any, where no type check stops it
        raw = b'{"DiscoveryData": ' + b"[" * depth + b"]" * depth + b"}"
    assume(len(raw) <= MAX_BODY)
    reply = fz.send(path, raw=raw, must_fail=True)
    assert reply.status == 400 and "nested deeper" in reply.json["Err"], reply


@examples(60)
@given(path=st.sampled_from(PATHS), over=st.integers(1, 3 * MAX_BODY), filler=st.sampled_from([b" ", b"x"]))
def test_a_body_over_the_limit_is_a_413_naming_it(fz: Fuzzed, path: str, over: int, filler: bytes) -> None:
    raw = b'{"NetworkID": "' + filler * (MAX_BODY + over) + b'"}'
    reply = fz.send(path, raw=raw, must_fail=True)
    assert reply.status == 413 and str(MAX_BODY) in reply.json["Err"], reply


@examples(40)
@given(path=st.sampled_from(MODELLED), size=st.integers(MAX_BODY // 2, MAX_BODY - 100))
def test_a_big_body_under_the_limit_is_read(fz: Fuzzed, path: str, size: int) -> None:
    raw = json.dumps({"NetworkID": "n" * size, "EndpointID": 7, "PoolID": 7}).encode()
    assert len(raw) <= MAX_BODY
    reply = fz.send(path, raw=raw)
    assert reply.status != 413, reply
    assert len(reply.text) < 5000, "an error quoting the body must be clipped"


CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "",
    "garbage/%%%",
]


@examples(300)
@given(ctype=st.sampled_from(CONTENT_TYPES) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
       encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity", "chunked-nonsense"]),
       path=st.sampled_from(PATHS))
def test_content_type_and_encoding_headers_do_not_matter(fz: Fuzzed, ctype: str, encoding: str | None,
                                                              path: str) -> None:
    """Docker sends neither header: the body is read as sent, JSON whatever
    the headers say (no decompression), so the answer is the same as without
    them."""
    body = valid_base(path) if path in MODELLED else {}
    headers = {"Content-Type": ctype}
    if encoding:
        headers["Content-Encoding"] = encoding
    reply = fz.send(path, body, headers=headers)
    assert reply.status != 400, f"a valid body was refused because of its headers {headers}: {reply}"


@examples(200)
@given(path=st.sampled_from(MODELLED), encoding=st.sampled_from(["gzip", "deflate", "br"]),
       body=st.binary(min_size=1, max_size=200))
def test_compressed_or_garbage_bodies_with_content_encoding_are_a_json_400(fz: Fuzzed, path: str, encoding: str,
                                                                          body: bytes) -> None:
    import gzip
    import zlib

    raw = {"gzip": gzip.compress, "deflate": zlib.compress, "br": lambda b: b}[encoding](body)
    assume(raw.strip() and not _is_json_object(raw))  # blank is read as {}, like no body
    reply = fz.send(path, raw=raw, headers={"Content-Encoding": encoding}, must_fail=True)
    assert reply.status == 400, reply


@examples(300)
@given(
    path=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"), min_size=0, max_size=60)
)
def test_unknown_paths_are_a_json_404(fz: Fuzzed, path: str) -> None:
    assume("/" + path not in ROUTES)
    reply = fz.send("/" + path, {"NetworkID": NID}, must_fail=True)
    assert reply.status == 404, reply


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_than_post_are_a_json_405(fz: Fuzzed, method: str) -> None:
    for path in PATHS:
        reply = fz.send(path, valid_base(path) if path in MODELLED else None, method=method, must_fail=True)
        assert reply.status == 405 and "POST" in reply.json["Err"], (path, reply)


def test_empty_bodies(fz: Fuzzed) -> None:
    """Calls Docker sends without a body answer; calls with required fields
    refuse an empty body by naming a missing field."""
    for path in BODYLESS:
        assert fz.send(path, raw=b"").status == 200
    for path in REQUIRED:
        for raw in (b"", b"{}", b"  \n", b"null"):
            reply = fz.send(path, raw=raw, must_fail=True)
            assert reply.status == 400, (path, raw, reply)


def test_non_standard_json_constants_are_refused(fz: Fuzzed) -> None:
    for const in (b"NaN", b"Infinity", b"-Infinity"):
        for path in MODELLED:
            reply = fz.send(path, raw=b'{"Options": {"x": ' + const + b'}, "DiscoveryData": ' + const + b"}",
                            must_fail=True)
            assert reply.status == 400 and "not valid JSON" in reply.json["Err"], reply
