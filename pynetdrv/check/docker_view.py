"""Docker's side of ``pynetdrv check``: the networks that use this instance
(as network or IPAM driver) and their containers' endpoints, read from the
Docker Engine API on its unix socket with aiohttp.  Never called from a
request handler: only the ``check`` command uses it."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import aiohttp

from pynetdrv.check.model import DockerEndpoint, DockerNetwork, DockerView

DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
TIMEOUT_SECONDS = 10.0


class DockerUnreachable(Exception):
    """The Engine API did not answer (dockerd down, no socket, timeout)."""


async def read_docker_view(drivers: str | tuple[str, ...], socket: Path = DEFAULT_DOCKER_SOCKET) -> DockerView:
    """The networks whose driver or IPAM driver is one of ``drivers`` (the
    instance's name and, for a managed plugin, its ``NAME:TAG``)."""
    names = {drivers} if isinstance(drivers, str) else set(drivers)
    if not socket.exists():
        raise DockerUnreachable(f"no Docker socket at {socket}")
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)), timeout=timeout) as s:
            listed = await _get(s, "/networks")
            ours = [n for n in listed if names & {n.get("Driver"), (n.get("IPAM") or {}).get("Driver")}]
            # The list leaves Containers empty on newer engines: inspect each network.
            return DockerView(tuple([_network(await _get(s, f"/networks/{n['Id']}")) for n in ours]))
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise DockerUnreachable(f"Docker at {socket} did not answer: {e or type(e).__name__}") from e


async def _get(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(f"http://docker{path}") as resp:
        if resp.status != 200:
            raise DockerUnreachable(f"GET {path}: HTTP {resp.status}: {(await resp.text()).strip()[:200]}")
        return await resp.json()


def _network(n: dict[str, Any]) -> DockerNetwork:
    ipam = n.get("IPAM") or {}
    configs = ipam.get("Config") or []
    aux = tuple(str(a) for c in configs for a in (c.get("AuxiliaryAddresses") or {}).values())
    endpoints = tuple(
        DockerEndpoint(
            container_id=cid, container_name=str(c.get("Name", "")), endpoint_id=str(c.get("EndpointID", "")),
            ipv4=str(c.get("IPv4Address") or ""), ipv6=str(c.get("IPv6Address") or ""),
        )
        for cid, c in sorted((n.get("Containers") or {}).items())
        # "ep-..." entries are swarm load-balancer endpoints, not containers.
        if not cid.startswith("ep-")
    )
    return DockerNetwork(
        network_id=str(n["Id"]), name=str(n.get("Name", "")), driver=str(n.get("Driver", "")),
        ipam_driver=str(ipam.get("Driver", "")),
        subnets=tuple(str(ipaddress.ip_network(c["Subnet"], strict=False)) for c in configs if c.get("Subnet")),
        aux_addresses=aux, endpoints=endpoints,
    )
