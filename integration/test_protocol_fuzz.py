"""Protocol fuzzing of the real daemon (pynetdrv-it) on its real unix socket.

With a real pynetdrv network and a running container in place, hypothesis
sends requests that cannot be valid to every path: random bytes, a known
field of the wrong type, deep nesting, bodies over the size limit, NaN,
empty bodies where fields are required, unknown paths, other methods than
POST.  Each answer must be a 4xx/5xx JSON ``{"Err"}``, the state file and
the daemon's links must be exactly as before (checked after every request
and every 50 requests), and the daemon must stay up.  Afterwards a real
``docker run`` on the network still gets an address and reaches its gateway.

Only requests that must be refused are sent here: an accepted random request
would create real bridges and pools behind Docker's back.  The unit fuzzer
(tests/unit/test_protocol_fuzz.py) also sends valid-shaped random bodies.
Subnet: 10.226.250.0/24.  PYNETDRV_LONG=1 sends ten times as many.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import sqlite3
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from integration.docker_objects import ping
from integration.host import our_links
from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.api.routes import CONTENT_TYPE, MAX_BODY, MAX_DEPTH

LONG = os.environ.get("PYNETDRV_LONG", "") not in ("", "0")
SUBNET = ipaddress.ip_network("10.226.250.0/24")

N, IPAM = "/NetworkDriver.", "/IpamDriver."
MODELS: dict[str, type[BaseModel]] = {
    N + "CreateNetwork": nm.CreateNetworkRequest, N + "DeleteNetwork": nm.NetworkRef,
    N + "CreateEndpoint": nm.CreateEndpointRequest, N + "EndpointOperInfo": nm.EndpointRef,
    N + "DeleteEndpoint": nm.EndpointRef, N + "Join": nm.JoinRequest, N + "Leave": nm.EndpointRef,
    N + "DiscoverNew": nm.DiscoveryRequest, N + "DiscoverDelete": nm.DiscoveryRequest,
    N + "ProgramExternalConnectivity": nm.ProgramExternalConnectivityRequest,
    N + "RevokeExternalConnectivity": nm.EndpointRef, N + "AllocateNetwork": nm.AllocateNetworkRequest,
    N + "FreeNetwork": nm.NetworkRef,
    IPAM + "RequestPool": im.RequestPoolRequest, IPAM + "ReleasePool": im.PoolRef,
    IPAM + "RequestAddress": im.RequestAddressRequest, IPAM + "ReleaseAddress": im.ReleaseAddressRequest,
}
BODYLESS = ["/Plugin.Activate", N + "GetCapabilities", IPAM + "GetCapabilities", IPAM + "GetDefaultAddressSpaces"]
PATHS = sorted([*MODELS, *BODYLESS])
MODELLED = sorted(MODELS)
REQUIRED = sorted(p for p, m in MODELS.items() if any(f.is_required() for f in m.model_fields.values()))


# A raw client: a body over the limit is answered before it is all sent, so
# the write may fail while the answer is already waiting to be read.

@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def send(sock_path: Path, path: str, body: bytes, method: str = "POST") -> Answer:
    head = (f"{method} {path} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n"
            f"Content-Length: {len(body)}\r\nAccept: {CONTENT_TYPE}\r\nConnection: close\r\n\r\n").encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sock_path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    header, _, payload = data.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(fields.get("content-length", len(payload)))
    return Answer(int(lines[0].split()[1]), fields.get("content-type", "").split(";")[0], payload[:length])


# Bodies that can never be valid ---------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)


def wrong_values(annotation: Any) -> st.SearchStrategy[Any] | None:
    """Values never valid for a field of this type (the models are strict)."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, annotation = len(args) < len(typing.get_args(annotation)), args[0]
    none = st.nothing() if optional else st.none()
    ints, texts = st.integers(-(2**64), 2**64), st.text(max_size=30)
    lists, dicts = st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=3)
    origin = typing.get_origin(annotation) or annotation
    if annotation is str:
        return st.one_of(none, ints, st.booleans(), lists, dicts)
    if annotation is bool:
        return st.one_of(none, ints, texts, lists, dicts)
    if annotation is int:
        return st.one_of(none, texts, lists, dicts)
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return st.one_of(none, ints, texts, st.booleans(), lists)
    if origin is list:
        return st.one_of(none, ints, texts, st.booleans(), dicts)
    return None


WRONG = [(p, name, s) for p in MODELLED for name, f in MODELS[p].model_fields.items()
         if (s := wrong_values(f.annotation)) is not None]


def is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def cases(ci: int) -> settings:
    return settings(max_examples=ci * 10 if LONG else ci, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


# The oracle ----------------------------------------------------------------------

def state_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the state file, read-only (WAL lets us read beside the daemon)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


class Fuzzer:
    def __init__(self, daemon: Any, refs: dict[str, str]) -> None:
        self.daemon = daemon
        self.refs = refs
        self.sent: dict[str, int] = {}
        self.rows = state_rows(daemon.state_path)
        self.links = our_links()

    def base(self, path: str) -> dict[str, Any]:
        return {k: self.refs[k] for k in MODELS[path].model_fields if k in self.refs}

    def refused(self, kind: str, path: str, body: bytes, method: str = "POST", status: int | None = None,
                words: tuple[str, ...] = ()) -> Answer:
        ans = send(self.daemon.socket_path, path, body, method)
        self.sent[kind] = self.sent.get(kind, 0) + 1
        where = f"{method} {path} {body[:200]!r}"
        assert ans.status != 200 and 400 <= ans.status < 600, f"{where}: answered {ans}"
        assert ans.content_type == CONTENT_TYPE, f"{where}: {ans}"
        err = json.loads(ans.body).get("Err")
        assert isinstance(err, str) and err.strip() and "Traceback" not in err, f"{where}: {ans}"
        if status is not None:
            assert ans.status == status, f"{where}: {ans}"
        for w in words:
            assert w in err, f"{where}: {err!r} does not say {w!r}"
        assert state_rows(self.daemon.state_path) == self.rows, f"{where} changed the state file"
        if sum(self.sent.values()) % 50 == 0:
            self.check_links_and_daemon()
        return ans

    def check_links_and_daemon(self) -> None:
        assert self.daemon.running(), "pynetdrv died"
        assert our_links() == self.links, "the daemon's links changed"


@pytest.mark.once  # fuzzes pynetdrv itself; the engine only runs the container at the end
def test_protocol_fuzz_real_daemon(pynetdrv, make_network, make_container, resources):
    resources.subnets.add(str(SUBNET))
    gw = next(SUBNET.hosts())
    net = make_network("--subnet", str(SUBNET))
    first = make_container(net)
    assert first.ip(net) in SUBNET
    ep_id = first.net(net)["EndpointID"]
    f = Fuzzer(pynetdrv, {"NetworkID": net.id, "EndpointID": ep_id, "PoolID": f"local/{SUBNET}",
                          "Address": str(first.ip(net)), "Pool": str(SUBNET), "SandboxKey": "/x"})

    @cases(600)
    @given(path=st.sampled_from(MODELLED), body=st.binary(min_size=1, max_size=600))
    def random_bytes(path: str, body: bytes) -> None:
        assume(body.strip() and not is_json_object(body))
        f.refused("random bytes", path, body, status=400)

    @cases(600)
    @given(which=st.sampled_from(WRONG), data=st.data())
    def wrong_types(which: tuple[str, str, st.SearchStrategy[Any]], data: st.DataObject) -> None:
        path, name, wrong = which
        body = {**f.base(path), name: data.draw(wrong, label=name)}
        f.refused("wrong type", path, json.dumps(body).encode(), status=400, words=(name,))

    @cases(60)
    @given(path=st.sampled_from(MODELLED), depth=st.integers(MAX_DEPTH + 1, 200_000), brace=st.booleans())
    def deep(path: str, depth: int, brace: bool) -> None:
        inner = (b'{"a":' * depth + b"1" + b"}" * depth) if brace else (b"[" * depth + b"]" * depth)
        assume(len(inner) < MAX_BODY - 20)
        f.refused("deep nesting", path, b'{"Options": ' + inner + b"}", status=400, words=("nested deeper",))

    @cases(12)
    @given(path=st.sampled_from(PATHS), over=st.integers(1, 2 * MAX_BODY))
    def too_big(path: str, over: int) -> None:
        f.refused("over the size limit", path, b'{"NetworkID": "' + b"x" * (MAX_BODY + over) + b'"}',
                  status=413, words=(str(MAX_BODY),))

    @cases(150)
    @given(name=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"), max_size=60))
    def unknown_path(name: str) -> None:
        assume("/" + name not in PATHS)
        f.refused("unknown path", "/" + name, json.dumps(f.base(N + "Join")).encode(), status=404)

    random_bytes()
    wrong_types()
    deep()
    too_big()
    unknown_path()
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in PATHS:
            f.refused("other method", path, b"{}", method=method, status=405, words=("POST",))
    for path in MODELLED:
        for const in (b"NaN", b"Infinity", b"-Infinity"):
            f.refused("NaN/Infinity", path, b'{"Options": {"x": ' + const + b"}}", status=400)
    for path in REQUIRED:
        for raw in (b"", b"{}", b"null", b"[]"):
            f.refused("empty or missing fields", path, raw, status=400)

    f.check_links_and_daemon()
    total = sum(f.sent.values())
    print(f"\nprotocol fuzz (real daemon {pynetdrv.socket_path}): {total} refused requests sent: "
          + ", ".join(f"{k} {v}" for k, v in f.sent.items()))
    assert total > 1000

    # Still a working plugin: a real container start gets an address and its gateway.
    second = make_container(net)
    ip = second.ip(net)
    assert ip in SUBNET and ip not in (first.ip(net), gw)
    ping(second, gw)
    ping(second, first.ip(net))
