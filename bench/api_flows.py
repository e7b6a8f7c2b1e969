"""What dockerd sends for a network and a container's endpoint, as plugin-protocol calls, and the
bare kernel work the same endpoint needs (pyroute2, no daemon).  Used by the netns benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import AsyncIPRoute

from bench.daemon import PluginClient, new_id

#: The calls of one container's endpoint lifecycle, in the order dockerd makes them.
LIFECYCLE_CALLS = ("RequestAddress", "CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "ReleaseAddress")


@dataclass
class Network:
    network_id: str
    pool_id: str
    bridge: str


@dataclass
class CallTimes:
    """Seconds per call, per call name (only filled when asked for)."""

    by_call: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in LIFECYCLE_CALLS})


async def create_network(client: PluginClient, subnet: str) -> Network:
    pool = await client.call("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": subnet, "Options": {}})
    gw = await client.call("IpamDriver.RequestAddress", {
        "PoolID": pool["PoolID"], "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    network_id = new_id()
    await client.call("NetworkDriver.CreateNetwork", {
        "NetworkID": network_id, "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
        "IPv4Data": [{"AddressSpace": "local", "Pool": pool["Pool"], "Gateway": gw["Address"], "AuxAddresses": {}}],
        "IPv6Data": [],
    })
    return Network(network_id, pool["PoolID"], f"pnbr-{network_id[:10]}")


async def create_endpoint(client: PluginClient, net: Network) -> tuple[str, str]:
    """RequestAddress + CreateEndpoint, as for `docker run`; returns (endpoint id, address)."""
    addr = (await client.call("IpamDriver.RequestAddress", {"PoolID": net.pool_id, "Address": "", "Options": {}}))[
        "Address"
    ]
    ep = new_id()
    await client.call(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": net.network_id,
            "EndpointID": ep,
            "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""},
            "Options": {},
        },
    )
    return ep, addr


async def api_lifecycle(client: PluginClient, net: Network, times: CallTimes | None = None) -> None:
    """The six calls of one container's endpoint, start to removal."""
    ep = new_id()
    clock = time.perf_counter
    marks = [clock()]
    addr = (await client.call("IpamDriver.RequestAddress", {"PoolID": net.pool_id, "Address": "", "Options": {}}))[
        "Address"
    ]
    marks.append(clock())
    await client.call(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": net.network_id,
            "EndpointID": ep,
            "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""},
            "Options": {},
        },
    )
    marks.append(clock())
    await client.call("NetworkDriver.Join", {
        "NetworkID": net.network_id, "EndpointID": ep, "SandboxKey": f"/var/run/docker/netns/{ep[:12]}", "Options": {}})
    marks.append(clock())
    await client.call("NetworkDriver.Leave", {"NetworkID": net.network_id, "EndpointID": ep})
    marks.append(clock())
    await client.call("NetworkDriver.DeleteEndpoint", {"NetworkID": net.network_id, "EndpointID": ep})
    marks.append(clock())
    await client.call("IpamDriver.ReleaseAddress", {"PoolID": net.pool_id, "Address": addr.split("/")[0]})
    marks.append(clock())
    if times is not None:
        for name, a, b in zip(LIFECYCLE_CALLS, marks, marks[1:], strict=False):
            times.by_call[name].append(b - a)


class BareKernel:
    """The kernel work of one endpoint without pynetdrv, in the fewest requests: one add of
    the veth pair (peer MAC set) with the host end already enslaved to a bridge and up, then
    one delete.  Same netlink library, same namespace."""

    def __init__(self, ipr: AsyncIPRoute, bridge: str) -> None:
        self._ipr = ipr
        self._bridge_name = bridge
        self._bridge_index = 0
        self._n = 0

    async def setup(self) -> None:
        await self._ipr.link("add", ifname=self._bridge_name, kind="bridge")
        (br,) = await self._ipr.link("get", ifname=self._bridge_name)
        self._bridge_index = br["index"]
        await self._ipr.link("set", index=self._bridge_index, state="up")

    async def lifecycle(self) -> None:
        self._n += 1
        host, peer = f"bkve-{self._n:x}", f"bkvc-{self._n:x}"
        await self._ipr.link("add", ifname=host, kind="veth", peer={"ifname": peer, "address": "02:00:00:00:00:01"},
                             master=self._bridge_index, state="up")
        await self._ipr.link("del", ifname=host)


async def plugin_noop(client: PluginClient) -> Any:
    """The protocol's cheapest call: HTTP over the socket and nothing else."""
    return await client.call("Plugin.Activate")
