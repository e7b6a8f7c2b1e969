"""Docker 28's gateway-allocation check (/NetworkDriver.GwAllocCheck), served by the real app
(build_app over the SQLite store and the FakeDataplane) the way dockerd 28.5 calls it."""

from __future__ import annotations

from typing import Any

import pytest
from http_helpers import Client, post

from pynetdrv.store.sqlite import SQLiteStore
from tests.fakes.dataplane import FakeDataplane

# What dockerd 28.5 sends for `docker network create -d pynetdrv --internal -o ...mtu=1400`
# (the CreateNetwork Options map; 28 adds enable_ipv4).
DOCKER28_OPTIONS: dict[str, Any] = {
    "com.docker.network.enable_ipv4": True,
    "com.docker.network.enable_ipv6": False,
    "com.docker.network.generic": {"com.docker.network.driver.mtu": "1400"},
    "com.docker.network.internal": True,
}


async def test_capabilities_announce_the_check(client: Client) -> None:
    status, body = await post(client, "/NetworkDriver.GetCapabilities")
    assert status == 200
    assert body["GwAllocChecker"] is True


@pytest.mark.parametrize("options", [DOCKER28_OPTIONS, {}, None, {"com.docker.network.generic": {}}])
async def test_gateways_are_always_wanted(client: Client, options: dict[str, Any] | None) -> None:
    # The bridge carries the gateway address on every network, internal ones included.
    status, body = await post(client, "/NetworkDriver.GwAllocCheck", {"Options": options})
    assert (status, body) == (200, {"SkipIPv4": False, "SkipIPv6": False})


async def test_an_empty_body_is_a_check_without_options(client: Client) -> None:
    status, body = await post(client, "/NetworkDriver.GwAllocCheck")
    assert (status, body) == (200, {"SkipIPv4": False, "SkipIPv6": False})


@pytest.mark.parametrize(("generic", "named"), [
    ({"com.docker.network.driver.mtu": "big"}, "com.docker.network.driver.mtu"),
    ({"com.docker.network.bridge.name": "-bad"}, "com.docker.network.bridge.name"),
    ({"com.docker.network.bridge.enable_icc": "maybe"}, "com.docker.network.bridge.enable_icc"),
])
async def test_an_invalid_option_is_refused_before_docker_allocates_anything(
        client: Client, store: SQLiteStore, dp: FakeDataplane, generic: dict[str, str], named: str) -> None:
    options = {**DOCKER28_OPTIONS, "com.docker.network.generic": generic}
    status, body = await post(client, "/NetworkDriver.GwAllocCheck", {"Options": options})
    assert status == 400, body
    assert named in body["Err"]
    assert await store.list_networks() == [] and await store.list_pools() == []


async def test_options_that_are_not_an_object_are_a_bad_request(client: Client) -> None:
    status, body = await post(client, "/NetworkDriver.GwAllocCheck", {"Options": ["x"]})
    assert status == 400
    assert "Options" in body["Err"]


async def test_create_network_takes_docker28s_enable_ipv4(client: Client, store: SQLiteStore) -> None:
    nid = "c" * 64
    status, body = await post(client, "/NetworkDriver.CreateNetwork", {
        "NetworkID": nid, "Options": DOCKER28_OPTIONS,
        "IPv4Data": [{"AddressSpace": "local", "Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}], "IPv6Data": []})
    assert (status, body) == (200, {})
    net = await store.get_network(nid)
    assert net is not None and net.internal and net.mtu == 1400
