"""Every user-supplied value that can reach netlink or iptables is checked
first: a bad one gets HTTP 400 with an {"Err"} that names the field, no
kernel step is taken (FakeDataplane records none) and nothing is stored.

What reaches the kernel, and from where:
- the bridge name (``-o com.docker.network.bridge.name``): link name, and
  ``-i``/``-o`` of an iptables rule;
- NetworkID / EndpointID: the interface alias that marks our links (and,
  hashed, the default bridge and veth names);
- the endpoint MAC address: the veth's address;
- the MTU: the links' MTU;
- addresses and pools: netlink addresses (parsed by netaddr, never as text).
"""

from __future__ import annotations

from typing import Any

import pytest
from http_helpers import Client, post

from pynetdrv.driver.naming import valid_ifname
from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane

NID = "fa3c5b26e4d633f0ed05677ce5c371fbdad26153b46ee011a60c4a95cc566069"
EID = "2998f72c5e354322daf63ecba9dc084588134edb492ddc99e317b72693b40d02"
BRIDGE = "com.docker.network.bridge.name"
MTU = "com.docker.network.driver.mtu"

#: Values an attacker or a typo could put where a name or number belongs.
HOSTILE = [
    "br\x00x", "br\n", "br\nx", "\nbr", "br\tx", "br x", " br", "br/x", "br:x", "br@x", "br+", "br*", "br%d",
    "$(reboot)", "`id`", "br;rm", "br|x", "-br", "--help", "-j", ".", "..", "brü", "бр0", "br٣", "ｂｒ",
    "x" * 16, "x" * 4096, "",
]


def create_network(nid: str = NID, generic: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"NetworkID": nid, "Options": {"com.docker.network.generic": generic or {}},
            "IPv4Data": [{"AddressSpace": "local", "Pool": "10.228.0.0/24", "Gateway": "10.228.0.1/24"}],
            "IPv6Data": []}


async def assert_refused(client: Client, dp: FakeDataplane, store: SQLiteStore, path: str, body: Any,
                         *names: str) -> str:
    calls_before = list(dp.calls)
    networks, endpoints = await store.list_networks(), await store.list_endpoints()
    status, reply = await post(client, path, body)
    assert status == 400, (status, reply)
    assert set(reply) == {"Err"}, reply
    for name in names:
        assert name in reply["Err"], reply
    assert dp.calls == calls_before, "a refused request reached the data plane"
    assert (await store.list_networks(), await store.list_endpoints()) == (networks, endpoints)
    return str(reply["Err"])


# Bridge name ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in HOSTILE if n], ids=repr)
async def test_hostile_bridge_names_are_refused(client: Client, dp: FakeDataplane, store: SQLiteStore,
                                                name: str) -> None:
    await assert_refused(client, dp, store, "/NetworkDriver.CreateNetwork", create_network(generic={BRIDGE: name}),
                         BRIDGE)


@pytest.mark.parametrize("value", [7, 1.5, True, ["br0"], {"x": 1}, None], ids=repr)
async def test_bridge_name_of_the_wrong_type_is_refused_or_default(client: Client, dp: FakeDataplane,
                                                                   store: SQLiteStore, value: Any) -> None:
    if value is None:  # same as not given: the derived name
        status, _ = await post(client, "/NetworkDriver.CreateNetwork", create_network(generic={BRIDGE: value}))
        assert status == 200 and f"pnbr-{NID[:10]}" in dp.links
        return
    await assert_refused(client, dp, store, "/NetworkDriver.CreateNetwork", create_network(generic={BRIDGE: value}),
                         BRIDGE)


@pytest.mark.parametrize("name", ["b", "br0", "br-app", "br_app.1", "x" * 15, "_private", "0br"])
async def test_plain_bridge_names_are_accepted(client: Client, dp: FakeDataplane, name: str) -> None:
    status, reply = await post(client, "/NetworkDriver.CreateNetwork", create_network(generic={BRIDGE: name}))
    assert status == 200, reply
    assert name in dp.links


def test_valid_ifname_matches_what_iptables_and_ip_take_literally() -> None:
    """The rule behind the refusals: ASCII letters, digits, '_', '.', '-';
    1-15 characters; not '.', '..' and not starting with '-' (it would read
    as an option to ``ip``, and iptables' '+' wildcard is never allowed)."""
    for name in HOSTILE:
        assert not valid_ifname(name), repr(name)


# MTU --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1500\n", " 1500", "1500 ", "1_500", "١٥٠٠", "+1500", "0x5dc", "1" * 5000,
                                   "1500\x00"], ids=repr)
async def test_mtu_must_be_plain_decimal(client: Client, dp: FakeDataplane, store: SQLiteStore, value: str) -> None:
    await assert_refused(client, dp, store, "/NetworkDriver.CreateNetwork", create_network(generic={MTU: value}),
                         MTU)


# Docker's IDs -----------------------------------------------------------------------------

BAD_IDS = ["ab\x00cd", "ab\ncd", "ab\n", "ab cd", "ab/cd", "ab:cd", "-ab", "é" * 8, "a" * 300, "a" * 100_000]


@pytest.mark.parametrize("nid", BAD_IDS, ids=lambda v: repr(v[:12]))
async def test_hostile_network_ids_are_refused(client: Client, dp: FakeDataplane, store: SQLiteStore,
                                               nid: str) -> None:
    """The network ID becomes the bridge's interface alias: a NUL cut it
    short and a long one made the alias fail after the bridge existed."""
    await assert_refused(client, dp, store, "/NetworkDriver.CreateNetwork", create_network(nid), "NetworkID")


@pytest.mark.parametrize("eid", BAD_IDS, ids=lambda v: repr(v[:12]))
async def test_hostile_endpoint_ids_are_refused(client: Client, dp: FakeDataplane, store: SQLiteStore,
                                                eid: str) -> None:
    assert (await post(client, "/NetworkDriver.CreateNetwork", create_network()))[0] == 200
    body = {"NetworkID": NID, "EndpointID": eid, "Interface": {"Address": "10.228.0.5/24"}, "Options": {}}
    await assert_refused(client, dp, store, "/NetworkDriver.CreateEndpoint", body, "EndpointID")


@pytest.mark.parametrize("nid", [NID, "qv8n7a2kz0m1c9x4b5y6w3e2r", "a", "A1_b.c-d"])
async def test_docker_and_swarm_ids_are_accepted(client: Client, dp: FakeDataplane, nid: str) -> None:
    status, reply = await post(client, "/NetworkDriver.CreateNetwork", create_network(nid))
    assert status == 200, reply
    assert all(valid_ifname(name) for name in dp.links)


# MAC address ------------------------------------------------------------------------------

@pytest.mark.parametrize("mac", [
    "00-11-22-33-44-55", "0011.2233.4455", "001122334455", "00:11:22:33:44:55:66:77", "1", "0x1",
    "00:11:22:33:44:5", "00:11:22:33:44:55\n", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
    "０0:11:22:33:44:55",
], ids=repr)
async def test_endpoint_mac_must_be_a_unicast_colon_form_mac(client: Client, dp: FakeDataplane, store: SQLiteStore,
                                                             mac: str) -> None:
    """Other spellings used to reach pyroute2 and fail there with a bare
    ValueError; multicast/zero MACs reached the kernel, which refused them."""
    assert (await post(client, "/NetworkDriver.CreateNetwork", create_network()))[0] == 200
    body = {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.228.0.5/24", "MacAddress": mac},
            "Options": {}}
    await assert_refused(client, dp, store, "/NetworkDriver.CreateEndpoint", body, "MAC")


@pytest.mark.parametrize("mac", ["02:42:0a:e4:00:05", "02:42:0A:E4:00:05", "ae:00:00:00:00:01"])
async def test_docker_style_macs_are_accepted(client: Client, dp: FakeDataplane, mac: str) -> None:
    assert (await post(client, "/NetworkDriver.CreateNetwork", create_network()))[0] == 200
    body = {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.228.0.5/24", "MacAddress": mac},
            "Options": {}}
    status, reply = await post(client, "/NetworkDriver.CreateEndpoint", body)
    assert status == 200, reply


# Addresses --------------------------------------------------------------------------------

# Not here: "10.228.0.5/24\n" is accepted (netaddr ignores the newline) and
# stored as sent; it never reaches the kernel (Docker programs container
# addresses), but ipam/addresses.py could refuse whitespace (left to its owner).
@pytest.mark.parametrize("address", ["10.228.0.5", "10.228.0.5/24\x00", "10.228.0.5/33",
                                     "010.228.0.5/24", "10.228.0.5 /24", "::ffff:10.228.0.5/24x"], ids=repr)
async def test_endpoint_addresses_are_parsed_strictly(client: Client, dp: FakeDataplane, store: SQLiteStore,
                                                      address: str) -> None:
    assert (await post(client, "/NetworkDriver.CreateNetwork", create_network()))[0] == 200
    body = {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": address}, "Options": {}}
    await assert_refused(client, dp, store, "/NetworkDriver.CreateEndpoint", body, "address")
