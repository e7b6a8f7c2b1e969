"""The network driver against a model, stateful (hypothesis RuleBasedStateMachine).

Any sequence of CreateNetwork / DeleteNetwork / CreateEndpoint / Join /
EndpointOperInfo / Leave / DeleteEndpoint, with retries, unknown IDs,
endpoints on the wrong network, deletes out of order (a network deleted under
its endpoints), two networks asking for the same bridge name, daemon restarts
on the same state file and host reboots (every link gone while the daemon is
down), sent over the real unix socket to the app the daemon serves (SQLite
state file, startup reconcile, FakeDataplane as the kernel):

- every answer is the one the model predicts (200 and the right gateway and
  interface, or a non-200 ``{"Err"}`` for an unknown or conflicting object);
- nothing leaks: the links pynetdrv owns in the (fake) kernel are exactly the
  bridges of the stored networks and the veth pairs of the stored endpoints,
  each veth on its network's bridge; the store equals the model;
- ``pynetdrv status`` counts (endpoints, joined) agree.

PYNETDRV_LONG=1 runs 20x the examples and 3x the steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from plugin_harness import PluginHarness, machine_settings

from pynetdrv.dataplane.base import VethSpec, owner_alias
from pynetdrv.driver import naming

N = "/NetworkDriver."
SHARED_BRIDGE = "pnfz-shared"


@dataclass(frozen=True)
class NetSpec:
    nid: str
    subnet: str
    gateway: str
    bridge_option: str = ""

    @property
    def bridge(self) -> str:
        return self.bridge_option or naming.bridge_name(self.nid)

    def body(self) -> dict[str, object]:
        generic = {"com.docker.network.bridge.name": self.bridge_option} if self.bridge_option else {}
        return {
            "NetworkID": self.nid,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": generic},
            "IPv4Data": [{"AddressSpace": "local", "Pool": self.subnet, "Gateway": f"{self.gateway}/24"}],
            "IPv6Data": [],
        }


#: A network ID always comes with the same options, as from Docker; the last
#: two ask for the same bridge name, so at most one of them can exist.
NETS = [
    NetSpec("a1" * 32, "10.227.1.0/24", "10.227.1.1"),
    NetSpec("b2" * 32, "10.227.2.0/24", "10.227.2.254"),
    NetSpec("not-a-hex-network-id", "10.227.3.0/24", "10.227.3.1"),
    NetSpec("c3" * 32, "10.227.4.0/24", "10.227.4.1", SHARED_BRIDGE),
    NetSpec("d4" * 32, "10.227.5.0/24", "10.227.5.1", SHARED_BRIDGE),
]
BY_ID = {n.nid: n for n in NETS}
UNKNOWN_NET = "e5" * 32
EIDS = ["0a" * 32, "1b" * 32, "2c" * 32, "endpoint-with-a-name", "3d" * 32]
SANDBOX = "/var/run/docker/netns/"

STATS = {"examples": 0, "requests": 0, "restarts": 0, "reboots": 0}


@dataclass
class ModelEndpoint:
    nid: str
    address: str
    mac: str
    joined: bool = False


class DriverMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = PluginHarness()
        self.nets: set[str] = set()
        self.eps: dict[str, ModelEndpoint] = {}
        STATS["examples"] += 1

    def teardown(self) -> None:
        STATS["requests"] += self.h.requests
        self.h.close()

    def call(self, method: str, body: dict[str, object]) -> tuple[int, object]:
        reply = self.h.call(N + method, body)
        assert reply.content_type == "application/vnd.docker.plugins.v1.2+json", reply
        return reply.status, reply.json

    @staticmethod
    def is_error(status: int, body: object, *words: str) -> None:
        assert 400 <= status < 600 and status != 404, (status, body)
        assert isinstance(body, dict) and isinstance(body.get("Err"), str) and body["Err"], body
        for w in words:
            assert w in body["Err"], (w, body)

    # rules -------------------------------------------------------------------
    @rule(net=st.sampled_from(NETS))
    def create_network(self, net: NetSpec) -> None:
        status, body = self.call("CreateNetwork", net.body())
        clash = any(BY_ID[o].bridge == net.bridge for o in self.nets if o != net.nid)
        if clash and net.nid not in self.nets:
            self.is_error(status, body, net.bridge)
            return
        assert (status, body) == (200, {})
        self.nets.add(net.nid)

    @rule(nid=st.sampled_from([n.nid for n in NETS] + [UNKNOWN_NET]))
    def delete_network(self, nid: str) -> None:
        status, body = self.call("DeleteNetwork", {"NetworkID": nid})
        assert (status, body) == (200, {})
        self.nets.discard(nid)
        self.eps = {e: ep for e, ep in self.eps.items() if ep.nid != nid}

    @rule(eid=st.sampled_from(EIDS), nid=st.sampled_from([n.nid for n in NETS] + [UNKNOWN_NET]), mac=st.booleans())
    def create_endpoint(self, eid: str, nid: str, mac: bool) -> None:
        net = BY_ID.get(nid)
        address = f"{net.subnet.rsplit('.', 1)[0]}.{10 + EIDS.index(eid)}/24" if net else "10.227.9.9/24"
        iface = {"Address": address, "AddressIPv6": "", "MacAddress": "02:42:0a:e3:00:01" if mac else ""}
        status, body = self.call("CreateEndpoint", {"NetworkID": nid, "EndpointID": eid, "Interface": iface,
                                                    "Options": {}})
        if nid not in self.nets:
            self.is_error(status, body, "not known")
            return
        if eid in self.eps and self.eps[eid].nid != nid:
            self.is_error(status, body, "already exists")
            return
        assert status == 200, body
        ep = self.eps.setdefault(eid, ModelEndpoint(nid, address, str(iface["MacAddress"]) or naming.derived_mac(eid)))
        if mac:
            assert body == {"Interface": None}
        else:  # the MAC it has, also on a retry that leaves it out
            assert body == {"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ep.mac}}

    def _endpoint_call_target(self, data: st.DataObject) -> tuple[str, str]:
        """Mostly an endpoint's own network; sometimes a wrong or unknown one."""
        eid = data.draw(st.sampled_from(EIDS), label="eid")
        own = self.eps[eid].nid if eid in self.eps else None
        nid = data.draw(st.sampled_from([n.nid for n in NETS] + [UNKNOWN_NET]) if own is None
                        else st.one_of(st.just(own), st.just(own), st.sampled_from([n.nid for n in NETS])),
                        label="nid")
        return eid, nid

    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        eid, nid = self._endpoint_call_target(data)
        status, body = self.call("Join", {"NetworkID": nid, "EndpointID": eid, "SandboxKey": SANDBOX + eid[:12],
                                          "Options": {}})
        ep = self.eps.get(eid)
        if nid not in self.nets:
            self.is_error(status, body, "not known")
            return
        if ep is None or ep.nid != nid:
            self.is_error(status, body, "not known")
            return
        assert status == 200, body
        assert body == {
            "InterfaceName": {"SrcName": naming.veth_names(eid)[1], "DstPrefix": "eth"},
            "Gateway": BY_ID[nid].gateway, "GatewayIPv6": "", "StaticRoutes": [], "DisableGatewayService": True,
        }
        ep.joined = True

    @rule(data=st.data())
    def endpoint_oper_info(self, data: st.DataObject) -> None:
        eid, nid = self._endpoint_call_target(data)
        status, body = self.call("EndpointOperInfo", {"NetworkID": nid, "EndpointID": eid})
        ep = self.eps.get(eid)
        if ep is None or ep.nid != nid:
            self.is_error(status, body, "not known")
            return
        assert status == 200, body
        assert isinstance(body, dict) and body["Value"]["HostInterface"] == naming.veth_names(eid)[0]
        assert body["Value"]["SandboxKey"] == (SANDBOX + eid[:12] if ep.joined else "")

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        eid, nid = self._endpoint_call_target(data)
        status, body = self.call("Leave", {"NetworkID": nid, "EndpointID": eid})
        assert (status, body) == (200, {})
        ep = self.eps.get(eid)
        if ep is not None and ep.nid == nid:
            ep.joined = False

    @rule(data=st.data())
    def delete_endpoint(self, data: st.DataObject) -> None:
        eid, nid = self._endpoint_call_target(data)
        status, body = self.call("DeleteEndpoint", {"NetworkID": nid, "EndpointID": eid})
        assert (status, body) == (200, {})
        ep = self.eps.get(eid)
        if ep is not None and ep.nid == nid:
            del self.eps[eid]

    @precondition(lambda self: bool(self.nets))
    @rule()
    def restart_daemon(self) -> None:
        self.h.restart()
        STATS["restarts"] += 1
        report = self.h.last_reconcile
        assert report is not None and not report.errors and not report.links_removed

    @precondition(lambda self: bool(self.nets))
    @rule()
    def reboot_host(self) -> None:
        """Links gone: bridges come back, endpoints not yet joined get their
        pair again, joined ones died with their container and are forgotten."""
        self.h.reboot()
        STATS["reboots"] += 1
        self.eps = {e: ep for e, ep in self.eps.items() if not ep.joined}
        report = self.h.last_reconcile
        assert report is not None and not report.errors

    # invariants ---------------------------------------------------------------
    @invariant()
    def store_equals_model(self) -> None:
        snap = self.h.snapshot()
        assert {n.network_id: n.bridge for n in snap["networks"]} == {n: BY_ID[n].bridge for n in self.nets}
        assert {
            e.endpoint_id: (e.network_id, e.address, e.mac, e.sandbox_key is not None and e.sandbox_key != "")
            for e in snap["endpoints"]
        } == {e: (ep.nid, ep.address, ep.mac, ep.joined) for e, ep in self.eps.items()}

    @invariant()
    def kernel_equals_store(self) -> None:
        """No link without a record, no record without its link."""
        want = {BY_ID[n].bridge: ("bridge", owner_alias("bridge", n)) for n in self.nets}
        for eid in self.eps:
            host, peer = naming.veth_names(eid)
            want[host] = want[peer] = ("veth", owner_alias("veth", eid))
        links = self.h.dp.links
        assert {name: (link.kind, link.alias) for name, link in links.items()} == want
        for eid, ep in self.eps.items():
            spec = links[naming.veth_names(eid)[0]].spec
            assert isinstance(spec, VethSpec) and spec.bridge == BY_ID[ep.nid].bridge

    @invariant()
    def status_counts_agree(self) -> None:
        counts = {}
        for line in self.h.status().splitlines():
            m = re.search(r"(\d+) \((\d+) joined\)", line)
            if m:
                counts[line.split()[0]] = (int(m.group(1)), int(m.group(2)))
        want = {}
        for n in self.nets:
            eps = [ep for ep in self.eps.values() if ep.nid == n]
            want[n[:12]] = (len(eps), sum(ep.joined for ep in eps))
        assert counts == want


def test_driver_state_machine() -> None:
    before = dict(STATS)
    run_state_machine_as_test(DriverMachine, settings=machine_settings(examples=60, steps=40))
    ran = {k: STATS[k] - before[k] for k in STATS}
    print(f"\ndriver state machine: {ran['examples']} examples, {ran['requests']} requests, "
          f"{ran['restarts']} restarts, {ran['reboots']} host reboots")
    assert ran["examples"] > 0 and ran["requests"] > 0


def test_leave_and_delete_naming_the_wrong_network_leave_the_endpoint_alone() -> None:
    """Found by the machine above: DeleteEndpoint / Leave with another
    network's ID used to delete / unjoin the endpoint anyway (under the wrong
    network's lock)."""
    h = PluginHarness()
    try:
        a, b = NETS[0], NETS[1]
        for net in (a, b):
            assert h.call(N + "CreateNetwork", net.body()).status == 200
        eid = EIDS[0]
        assert h.call(N + "CreateEndpoint", {"NetworkID": a.nid, "EndpointID": eid,
                                             "Interface": {"Address": "10.227.1.10/24"}}).status == 200
        assert h.call(N + "Join", {"NetworkID": a.nid, "EndpointID": eid, "SandboxKey": SANDBOX + "x"}).status == 200
        for method in ("Leave", "RevokeExternalConnectivity", "DeleteEndpoint"):
            reply = h.call(N + method, {"NetworkID": b.nid, "EndpointID": eid})
            assert (reply.status, reply.json) == (200, {})
        [ep] = h.snapshot()["endpoints"]
        assert (ep.network_id, ep.sandbox_key) == (a.nid, SANDBOX + "x")
        assert naming.veth_names(eid)[0] in h.dp.links
    finally:
        h.close()
