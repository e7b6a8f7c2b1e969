"""The stand-in plugin: an aiohttp app that writes every request it gets (path, JSON body,
Accept and Content-Length headers) as one JSONL line, tagged by the ``{"step": ...}`` line
written before it, and answers just enough for dockerd to go on.

Its IPAM hands out addresses from memory (first free address of the pool, or of the
sub-pool when one was asked for; the gateway asks for the pool's first address); its
network driver creates no links (Join returns no interface and disables the gateway
service), so nothing is configured on the host. State lives in the process only: a restarted tracer has forgotten it,
as a
plugin that keeps no state would."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from aiohttp import web

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

GATEWAY_TYPE = "com.docker.network.gateway"
REQUEST_ADDRESS_TYPE = "RequestAddressType"


class Recorder:
    """Writes the trace: step lines, call lines, and an optional header line. Each line is
    flushed at once, so a trace cut short by a crash still holds everything up to it."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.recording = True
        self.calls = 0
        self.last_call = time.monotonic()

    def write(self, line: dict[str, Any]) -> None:
        if self.recording:
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()

    def step(self, text: str) -> None:
        self.write({"step": text})

    def call(self, path: str, body: Any, accept: str | None, content_length: str | None) -> None:
        self.last_call = time.monotonic()
        if self.recording:
            self.calls += 1
        self.write({"call": path, "body": body, "accept": accept, "content_length": content_length})


class IpamError(Exception):
    pass


@dataclass
class Pool:
    net: IPNet
    sub: IPNet
    used: set[IPAddr] = field(default_factory=set)


class StandInIpam:
    """A minimal IPAM, in memory: automatic pools from 10.99.N.0/24 and fd99:0:0:N::/64."""

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}
        self.next_auto = {4: 0, 6: 0}

    def request_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("Pool"):
            net = ipaddress.ip_network(body["Pool"])
        else:
            version = 6 if body.get("V6") else 4
            while True:
                n = self.next_auto[version]
                self.next_auto[version] += 1
                net = ipaddress.ip_network(f"10.99.{n}.0/24" if version == 4 else f"fd99:0:0:{n:x}::/64")
                if str(net) not in self.pools:
                    break
        sub = ipaddress.ip_network(body["SubPool"]) if body.get("SubPool") else net
        if str(net) in self.pools:
            raise IpamError(f"pool {net} is already allocated")
        self.pools[str(net)] = Pool(net, sub)
        return {"PoolID": str(net), "Pool": str(net), "Data": {}}

    def release_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        self.pools.pop(body["PoolID"], None)
        return {}

    def _pool(self, pool_id: str) -> Pool:
        """The pool; one this process never saw (the tracer was restarted and dockerd still
        uses its networks) is taken up again from its ID, which is its CIDR, with nothing
        marked used: the restarted stand-in hands out the gateway address again."""
        if pool_id not in self.pools:
            try:
                net = ipaddress.ip_network(pool_id)
            except ValueError:
                raise IpamError(f"no pool {pool_id}") from None
            self.pools[pool_id] = Pool(net, net)
        return self.pools[pool_id]

    def request_address(self, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._pool(body["PoolID"])
        options = body.get("Options") or {}
        if body.get("Address"):
            addr = ipaddress.ip_address(body["Address"])
            if addr not in pool.net:
                raise IpamError(f"{addr} is not in pool {pool.net}")
        elif options.get(REQUEST_ADDRESS_TYPE) == GATEWAY_TYPE:
            addr = pool.net.network_address + 1
        else:
            addr = self._first_free(pool)
        pool.used.add(addr)
        return {"Address": f"{addr}/{pool.net.prefixlen}", "Data": {}}

    def _first_free(self, pool: Pool) -> IPAddr:
        for addr in pool.sub:
            if addr != pool.net.network_address and addr not in pool.used and not (
                    pool.net.version == 4 and addr == pool.net.broadcast_address):
                return addr
        raise IpamError(f"no free address in {pool.sub}")

    def release_address(self, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._pool(body["PoolID"])
        pool.used.discard(ipaddress.ip_address(body["Address"]))
        return {}


def _constant(reply: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda _body: reply


def answers(ipam: StandInIpam) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The reply to each call dockerd makes of a remote network + IPAM plugin."""
    table = {
        "/Plugin.Activate": _constant({"Implements": ["NetworkDriver", "IpamDriver"]}),
        "/NetworkDriver.GetCapabilities": _constant({"Scope": "local", "ConnectivityScope": "local"}),
        # With RequiresMACAddress dockerd makes the MAC before the IPAM call: it then comes in
        # RequestAddress's Options and in CreateEndpoint's Interface, as in the first recordings
        # the tests were written against (pynetdrv itself does not ask for it).
        "/IpamDriver.GetCapabilities": _constant({"RequiresMACAddress": True}),
        "/IpamDriver.GetDefaultAddressSpaces": _constant(
            {"LocalDefaultAddressSpace": "local", "GlobalDefaultAddressSpace": "global"}),
        "/IpamDriver.RequestPool": ipam.request_pool,
        "/IpamDriver.ReleasePool": ipam.release_pool,
        "/IpamDriver.RequestAddress": ipam.request_address,
        "/IpamDriver.ReleaseAddress": ipam.release_address,
        "/NetworkDriver.EndpointOperInfo": _constant({"Value": {}}),
    }
    # No interface, no gateway, and no docker_gwbridge either (DisableGatewayService): dockerd
    # then asks this endpoint for EndpointOperInfo, and the host gets no bridge of Docker's.
    table["/NetworkDriver.Join"] = _constant({"DisableGatewayService": True})
    for name in ("CreateNetwork", "DeleteNetwork", "AllocateNetwork", "FreeNetwork", "CreateEndpoint",
                 "Leave", "DeleteEndpoint", "ProgramExternalConnectivity", "RevokeExternalConnectivity",
                 "DiscoverNew", "DiscoverDelete"):
        table[f"/NetworkDriver.{name}"] = _constant({})
    return table


def build_app(recorder: Recorder, ipam: StandInIpam | None = None) -> web.Application:
    """The stand-in plugin: records every POST, then answers it (404 for an unknown path,
    500 with the error for a body it cannot use, as a plugin would)."""
    table = answers(ipam or StandInIpam())

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorder.call(request.path, body, request.headers.get("Accept"), request.headers.get("Content-Length"))
        answer = table.get(request.path)
        if answer is None:
            return web.json_response({"Err": f"tracer: no such call {request.path}"}, status=404)
        if body is not None and not isinstance(body, dict):
            return web.json_response({"Err": f"tracer: the body of {request.path} is not a JSON object"}, status=500)
        try:
            return web.json_response(answer(body or {}))
        except (IpamError, KeyError, ValueError) as e:
            return web.json_response({"Err": f"tracer: {type(e).__name__}: {e}"}, status=500)

    app = web.Application()
    app.router.add_post("/{call:.*}", handle)
    return app
