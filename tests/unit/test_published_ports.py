"""External connectivity over the fakes at the Firewall and PortReserver seams (and the
real store): ProgramExternalConnectivity holds the host ports and opens them, all or
nothing; Revoke and DeleteEndpoint release them; the firewall state always follows the
store; a restart restores both."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from driver_requests import EID, EID2, NID, NID2, create_req, ep_req, join_req, ref

from pynetdrv.api import network_models as nm
from pynetdrv.driver.service import NetworkService
from pynetdrv.errors import Conflict, Internal, InvalidParameter
from pynetdrv.firewall.model import FirewallState, NetworkRules, PortRule
from pynetdrv.ports.reserver import DYNAMIC
from pynetdrv.reconcile import reconcile
from pynetdrv.store.base import PortMapping
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane
from tests.fakes.firewall import FakeFirewall
from tests.fakes.ports import FakeReserver

BRIDGE = "pnbr-fa3c5b26e4"


def binding(port: int, host_port: int = 0, end: int = 0, proto: int = 6, host_ip: str = "") -> dict[str, Any]:
    return {"Proto": proto, "IP": "", "Port": port, "HostIP": host_ip, "HostPort": host_port, "HostPortEnd": end}


def program(*bindings: dict[str, Any], eid: str = EID, nid: str = NID) -> nm.ProgramExternalConnectivityRequest:
    return nm.ProgramExternalConnectivityRequest(
        NetworkID=nid, EndpointID=eid,
        Options={"com.docker.network.portmap": list(bindings),
                 "com.docker.network.endpoint.exposedports": [{"Proto": b["Proto"], "Port": b["Port"]}
                                                             for b in bindings]},
    )


@pytest.fixture
def fw() -> FakeFirewall:
    return FakeFirewall()


@pytest.fixture
def ports() -> FakeReserver:
    return FakeReserver()


@pytest.fixture
def svc(store: SQLiteStore, dp: FakeDataplane, fw: FakeFirewall, ports: FakeReserver) -> NetworkService:
    return NetworkService(store, dp, fw, ports)


async def joined(svc: NetworkService, eid: str = EID, address: str = "10.1.0.2/16", **create: Any) -> None:
    if not await svc._store.get_network(NID):
        await svc.create_network(create_req(**create))
    await svc.create_endpoint(ep_req(eid=eid, address=address))
    await svc.join(join_req(eid=eid))


async def test_program_publishes_and_oper_info_reports(svc: NetworkService, fw: FakeFirewall,
                                                       ports: FakeReserver, store: SQLiteStore) -> None:
    await joined(svc)
    await svc.program_external_connectivity(program(binding(80, 8080), binding(53, 9999, proto=17)))
    assert ports.held() == {("tcp", "0.0.0.0", 8080), ("udp", "0.0.0.0", 9999)}
    assert set(fw.state.ports) == {PortRule("tcp", "0.0.0.0", 8080, "10.1.0.2", 80, BRIDGE),
                                   PortRule("udp", "0.0.0.0", 9999, "10.1.0.2", 53, BRIDGE)}
    ep = await store.get_endpoint(EID)
    assert ep is not None and set(ep.ports) == {PortMapping("tcp", "0.0.0.0", 8080, "10.1.0.2", 80),
                                                PortMapping("udp", "0.0.0.0", 9999, "10.1.0.2", 53)}
    info = (await svc.endpoint_oper_info(ref())).Value
    assert {(b["Proto"], b["HostPort"], b["Port"], b["IP"]) for b in info["com.docker.network.portmap"]} == {
        (6, 8080, 80, "10.1.0.2"), (17, 9999, 53, "10.1.0.2")}
    assert len(info["com.docker.network.endpoint.exposedports"]) == 2


async def test_any_port_and_ranges(svc: NetworkService, ports: FakeReserver, store: SQLiteStore) -> None:
    await joined(svc)
    ports.host_taken.add(("tcp", "0.0.0.0", 8000))
    await svc.program_external_connectivity(program(binding(80), binding(81, 8000, 8002)))
    ep = await store.get_endpoint(EID)
    assert ep is not None
    by_port = {m.container_port: m.host_port for m in ep.ports}
    assert DYNAMIC[0] <= by_port[80] <= DYNAMIC[1]
    assert by_port[81] == 8001, "the first free port of the range"


async def test_host_binding_ipv4_is_the_default_host_ip(svc: NetworkService, fw: FakeFirewall) -> None:
    await joined(svc, generic={"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"})
    await svc.program_external_connectivity(program(binding(80, 8080), binding(81, 8081, host_ip="0.0.0.0")))
    assert {(p.host_ip, p.host_port) for p in fw.state.ports} == {("127.0.0.1", 8080), ("0.0.0.0", 8081)}


async def test_a_taken_port_refuses_the_start_and_changes_nothing(svc: NetworkService, fw: FakeFirewall,
                                                                  ports: FakeReserver, store: SQLiteStore) -> None:
    await joined(svc)
    await svc.program_external_connectivity(program(binding(80, 8080)))
    await joined(svc, eid=EID2, address="10.1.0.3/16")
    before, held = fw.state, ports.held()
    # The first binding of the request is free, the second is not: all or nothing.
    with pytest.raises(Conflict, match="8080"):
        await svc.program_external_connectivity(program(binding(81, 8081), binding(80, 8080), eid=EID2))
    assert fw.state == before and ports.held() == held
    ep2 = await store.get_endpoint(EID2)
    assert ep2 is not None and ep2.ports == ()


async def test_a_port_held_by_a_host_process_is_refused(svc: NetworkService, ports: FakeReserver) -> None:
    await joined(svc)
    ports.host_taken.add(("udp", "0.0.0.0", 53))
    with pytest.raises(Conflict, match="53"):
        await svc.program_external_connectivity(program(binding(53, 53, proto=17)))
    assert ports.held() == set()


async def test_firewall_failure_undoes_everything(svc: NetworkService, fw: FakeFirewall, ports: FakeReserver,
                                                  store: SQLiteStore) -> None:
    await joined(svc)
    before = fw.state
    fw.fail_next = "iptables-restore failed"
    with pytest.raises(Internal, match="iptables-restore"):
        await svc.program_external_connectivity(program(binding(80, 8080)))
    assert ports.held() == set() and fw.state == before
    ep = await store.get_endpoint(EID)
    assert ep is not None and ep.ports == ()
    await svc.program_external_connectivity(program(binding(80, 8080)))  # and it works afterwards
    assert ports.held() == {("tcp", "0.0.0.0", 8080)}


async def test_revoke_and_delete_release_the_ports(svc: NetworkService, fw: FakeFirewall,
                                                   ports: FakeReserver) -> None:
    await joined(svc)
    await joined(svc, eid=EID2, address="10.1.0.3/16")
    await svc.program_external_connectivity(program(binding(80, 8080)))
    await svc.program_external_connectivity(program(binding(80, 8081), eid=EID2))
    await svc.revoke_external_connectivity(ref())
    await svc.revoke_external_connectivity(ref())  # idempotent
    await svc.revoke_external_connectivity(ref(eid="f" * 64))  # unknown: fine
    assert ports.held() == {("tcp", "0.0.0.0", 8081)}
    assert [p.host_port for p in fw.state.ports] == [8081]
    # No Revoke for EID2 (Docker crashed): DeleteEndpoint releases its ports.
    await svc.leave(ref(eid=EID2))
    await svc.delete_endpoint(ref(eid=EID2))
    assert ports.held() == set() and fw.state.ports == ()


async def test_program_retry_changes_nothing(svc: NetworkService, fw: FakeFirewall, ports: FakeReserver) -> None:
    await joined(svc)
    await svc.program_external_connectivity(program(binding(80, 8080)))
    applies = fw.applies
    await svc.program_external_connectivity(program(binding(80, 8080)))
    assert fw.applies == applies and ports.held() == {("tcp", "0.0.0.0", 8080)}


async def test_reprogram_with_other_bindings_replaces_them(svc: NetworkService, ports: FakeReserver) -> None:
    await joined(svc)
    await svc.program_external_connectivity(program(binding(80, 8080)))
    await svc.program_external_connectivity(program(binding(80, 9090)))
    assert ports.held() == {("tcp", "0.0.0.0", 9090)}


async def test_internal_network_publishes_nothing(svc: NetworkService, fw: FakeFirewall,
                                                  ports: FakeReserver) -> None:
    await joined(svc, internal=True)
    await svc.program_external_connectivity(program(binding(80, 8080)))
    assert ports.held() == set() and fw.state.ports == ()
    assert fw.state.networks[0].internal


@pytest.mark.parametrize(("bad", "needle"), [
    ({"Proto": 1, "Port": 80}, "protocol"),
    ({"Proto": 6, "Port": 0}, "Port"),
    ({"Proto": 6, "Port": 70000}, "Port"),
    ({"Proto": 6, "Port": 80, "HostPort": "80"}, "HostPort"),
    ({"Proto": 6, "Port": 80, "HostPort": 90, "HostPortEnd": 80}, "90-80"),
    ({"Proto": 6, "Port": 80, "HostIP": "::1"}, "IPv4"),
    ({"Proto": 6, "Port": 80, "HostIP": "nowhere"}, "nowhere"),
    ({"Proto": True, "Port": 80}, "protocol"),
])
async def test_bad_bindings_are_refused_by_name(svc: NetworkService, fw: FakeFirewall, ports: FakeReserver,
                                                bad: dict[str, Any], needle: str) -> None:
    await joined(svc)
    before = fw.state
    with pytest.raises(InvalidParameter, match=needle):
        await svc.program_external_connectivity(program(binding(81, 8081), bad))
    assert ports.held() == set() and fw.state == before


async def test_networks_and_their_options_reach_the_firewall(svc: NetworkService, fw: FakeFirewall,
                                                             dp: FakeDataplane) -> None:
    await svc.create_network(create_req(generic={"com.docker.network.bridge.enable_icc": "false",
                                                 "com.docker.network.bridge.enable_ip_masquerade": "0"},
                                        v6=[("fd00:1::/64", "fd00:1::1/64")]))
    assert fw.state.networks == (NetworkRules(BRIDGE, ("10.1.0.0/16", "fd00:1::/64"), masquerade=False, icc=False),)
    await svc.delete_network(nm.NetworkRef(NetworkID=NID))
    assert fw.state == FirewallState()


async def test_network_create_undone_when_the_firewall_fails(svc: NetworkService, fw: FakeFirewall,
                                                             dp: FakeDataplane, store: SQLiteStore) -> None:
    fw.fail_next = "no iptables"
    with pytest.raises(Internal, match="no iptables"):
        await svc.create_network(create_req())
    assert dp.links == {} and await store.list_networks() == [] and fw.state == FirewallState()


async def test_concurrent_programs_share_firewall_applies(svc: NetworkService, fw: FakeFirewall) -> None:
    await svc.create_network(create_req())
    eids = [f"{i:02x}" * 32 for i in range(12)]
    for i, eid in enumerate(eids):
        await joined(svc, eid=eid, address=f"10.1.0.{i + 10}/16")
    applies = fw.applies
    await asyncio.gather(*(svc.program_external_connectivity(program(binding(80, 8100 + i), eid=eid))
                           for i, eid in enumerate(eids)))
    assert sorted(p.host_port for p in fw.state.ports) == [8100 + i for i in range(12)]
    assert fw.applies - applies <= len(eids)


async def test_restart_restores_ports_and_drops_the_ones_taken_meanwhile(
        file_store: SQLiteStore, dp: FakeDataplane) -> None:
    first = NetworkService(file_store, dp, FakeFirewall(), FakeReserver())
    await joined(first)
    await first.program_external_connectivity(program(binding(80, 8080), binding(81, 8081)))
    # "Restart": fresh firewall and sockets, the same state; a process took 8081 meanwhile.
    fw, ports = FakeFirewall(), FakeReserver()
    ports.host_taken.add(("tcp", "0.0.0.0", 8081))
    again = NetworkService(file_store, dp, fw, ports)
    report = await reconcile(file_store, dp, again.external)
    assert ports.held() == {("tcp", "0.0.0.0", 8080)}
    assert [p.host_port for p in fw.state.ports] == [8080]
    assert any("8081" in e for e in report.errors)
    ep = await file_store.get_endpoint(EID)
    assert ep is not None and [m.host_port for m in ep.ports] == [8080]


async def test_keeper_repairs_a_drifted_firewall(svc: NetworkService, fw: FakeFirewall) -> None:
    await svc.create_network(create_req())
    good = fw.state
    fw.state = FirewallState()  # "iptables -F"
    keeper = asyncio.create_task(svc.external.keep(0.01))
    try:
        for _ in range(200):
            if fw.state == good:
                break
            await asyncio.sleep(0.01)
    finally:
        keeper.cancel()
    assert fw.state == good


async def test_second_network_keeps_the_first_ones_rules(svc: NetworkService, fw: FakeFirewall) -> None:
    await svc.create_network(create_req())
    await svc.create_network(create_req(nid=NID2, v4=[("10.2.0.0/16", "10.2.0.1/16")]))
    assert len(fw.state.networks) == 2
