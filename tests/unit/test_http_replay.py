"""Replaying what Docker really sent: the sessions recorded by tools/tracer
(tests/fixtures/traces, one set per engine) sent to the HTTP surface, served in-process by aiohttp exactly as
the daemon serves it, with every reply and the resulting state checked."""

from __future__ import annotations

import copy
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import netaddr
import pytest
from aiohttp.test_utils import TestClient, TestServer
from http_helpers import Client, post
from unit_helpers import RECORDINGS, load_recording

from pynetdrv.config import Config
from pynetdrv.reconcile import reconcile
from pynetdrv.server import build_app
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver
from tools.tracer.script import PLUGIN_RESTART


async def test_recorded_create_with_unknown_o_keys_is_accepted_and_logged(
        client: Client, dp: FakeDataplane, store: SQLiteStore, caplog: pytest.LogCaptureFixture) -> None:
    """The 20.10 trace's n2 used ``-o mtu=1400 -o foo=bar``: unknown keys are
    ignored, as Docker's bridge ignores them, but named in the log (a
    mistyped MTU key must be findable) with the keys that would be right."""
    creates = [line["body"] for line in load_recording("docker-20.10-calls.jsonl")
               if line.get("call") == "/NetworkDriver.CreateNetwork"]
    body = next(b for b in creates if b["Options"]["com.docker.network.generic"])
    status, reply = await post(client, "/NetworkDriver.CreateNetwork", body)
    assert status == 200, reply
    warning = next(r.getMessage() for r in caplog.records if "does not know" in r.getMessage())
    assert "'foo', 'mtu'" in warning and "com.docker.network.driver.mtu" in warning
    (net,) = await store.list_networks()
    assert net.mtu is None and net.network_id == body["NetworkID"]


#: -o keys the recorded stand-in accepted, mapped to pynetdrv's (others pass unchanged).
O_KEYS = {"mtu": "com.docker.network.driver.mtu"}


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
        self.client = TestClient(TestServer(build_app(self.store, self.dp, Config(), FakeFirewall(), FakeReserver())))
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
        body["Options"]["com.docker.network.generic"] = {O_KEYS.get(k, k): v for k, v in generic.items()}
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


@pytest.mark.parametrize("recording", RECORDINGS)
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
            if line.get("step") == PLUGIN_RESTART:
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
        if recording.endswith("-daemon-restart.jsonl"):
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
