"""``pynetdrv status`` renders what the state holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pynetdrv.api import ipam_models as im
from pynetdrv.api import network_models as nm
from pynetdrv.driver.service import NetworkService
from pynetdrv.ipam.service import IpamService
from pynetdrv.status import render_status
from pynetdrv.store.sqlite import SQLiteStore

NET, EP = "ab" * 32, "cd" * 32


async def _populate(ipam: IpamService, net: NetworkService) -> None:
    p = await ipam.request_pool(im.RequestPoolRequest(Pool="10.9.0.0/16", SubPool="10.9.5.0/24"))
    gw = await ipam.request_address(
        im.RequestAddressRequest(PoolID=p.PoolID, Options={"RequestAddressType": "com.docker.network.gateway"}))
    await net.create_network(nm.CreateNetworkRequest(
        NetworkID=NET, IPv4Data=[nm.IPAMData(Pool=p.Pool, Gateway=gw.Address)],
        Options={"com.docker.network.generic": {"com.docker.network.driver.mtu": "1400"}}))
    addr = await ipam.request_address(im.RequestAddressRequest(PoolID=p.PoolID))
    await net.create_endpoint(nm.CreateEndpointRequest(
        NetworkID=NET, EndpointID=EP, Interface=nm.EndpointInterface(Address=addr.Address)))
    await net.join(nm.JoinRequest(NetworkID=NET, EndpointID=EP, SandboxKey="/var/run/docker/netns/x"))
    await net.program_external_connectivity(nm.ProgramExternalConnectivityRequest(
        NetworkID=NET, EndpointID=EP, Options={"com.docker.network.portmap": [
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 0, "HostPortEnd": 0}]}))


async def test_status_lists_networks_and_pool_usage(
    store: SQLiteStore, ipam: IpamService, net: NetworkService
) -> None:
    await _populate(ipam, net)
    text = await render_status(store)
    net_line = next(line for line in text.splitlines() if line.startswith(NET[:12]))
    assert "pnbr-ababababab" in net_line and "1400" in net_line and "10.9.0.1/16" in net_line
    assert "1 (1 joined)" in net_line
    pool_line = next(line for line in text.splitlines() if line.startswith("10.9.0.0/16"))
    # gateway + one container out of 65534 assignable, 256 in the range.
    assert "10.9.5.0/24" in pool_line and "2 / 65534 (range 256)" in pool_line
    # -P: Docker cannot show the port a remote driver chose (docker port is empty), so
    # status is where users find it.
    (published,) = [line for line in text.splitlines() if line.startswith("0.0.0.0:")]
    ep = await store.get_endpoint(EP)
    assert ep is not None and len(ep.ports) == 1
    assert published.startswith(f"0.0.0.0:{ep.ports[0].host_port}/tcp")
    assert f"{ep.address.split('/')[0]}:80" in published and EP[:12] in published


def test_status_cli_missing_state_exits_1(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pynetdrv", "status", "--state", str(tmp_path / "none.db")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "no state file" in proc.stderr
