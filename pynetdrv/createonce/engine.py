"""This host's Docker Engine API on its unix socket, as create-once needs it: list our driver's
networks (with how many containers use each), create one, remove one, and the network events.
Only the background sync uses it, never a request handler (dockerd may be waiting on us)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from pynetdrv.createonce.catalog import Entry, Spec, Subnet
from pynetdrv.createonce.plan import GENERATION_LABEL, LocalNet
from pynetdrv.engine_api import TIMEOUT_S, DockerError, DockerUnavailable, EngineAPI

__all__ = ["DockerEngine", "DockerError", "DockerUnavailable", "Engine", "create_body", "local_net"]


class Engine(Protocol):
    async def networks(self) -> list[LocalNet]: ...

    async def create(self, entry: Entry) -> str: ...

    async def remove(self, network_id: str) -> None: ...

    def events(self) -> AsyncIterator[str]: ...


def _strs(d: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in d.items()} if isinstance(d, dict) else {}


def local_net(inspected: Mapping[str, Any]) -> LocalNet:
    """A LocalNet from ``GET /networks/<id>``."""
    ipam = inspected.get("IPAM") or {}
    subnets = tuple(Subnet(str(c.get("Subnet", "")), str(c.get("Gateway", "")), str(c.get("IPRange", "")),
                           _strs(c.get("AuxiliaryAddresses")))
                    for c in ipam.get("Config") or () if c.get("Subnet"))
    labels = _strs(inspected.get("Labels"))
    gen = labels.pop(GENERATION_LABEL, None)
    spec = Spec(subnets=subnets, options=_strs(inspected.get("Options")), labels=labels,
                ipam_driver=str(ipam.get("Driver") or ""), ipam_options=_strs(ipam.get("Options")),
                ipv6=bool(inspected.get("EnableIPv6")), internal=bool(inspected.get("Internal")),
                attachable=bool(inspected.get("Attachable")))
    return LocalNet(id=str(inspected["Id"]), name=str(inspected["Name"]), spec=spec,
                    containers=len(inspected.get("Containers") or {}),
                    generation=int(gen) if gen is not None and gen.isdigit() else None)


def create_body(entry: Entry, driver: str) -> dict[str, Any]:
    """``POST /networks/create`` for the entry, with our driver and the entry's generation label."""
    s = entry.spec
    config = []
    for sub in s.subnets:
        c: dict[str, Any] = {"Subnet": sub.subnet}
        if sub.gateway:
            c["Gateway"] = sub.gateway
        if sub.ip_range:
            c["IPRange"] = sub.ip_range
        if sub.aux:
            c["AuxiliaryAddresses"] = dict(sub.aux)
        config.append(c)
    return {"Name": entry.name, "CheckDuplicate": True, "Driver": driver,
            "IPAM": {"Driver": s.ipam_driver or "default", "Config": config, "Options": dict(s.ipam_options)},
            "Options": dict(s.options), "Labels": {**s.labels, GENERATION_LABEL: str(entry.generation)},
            "EnableIPv6": s.ipv6, "Internal": s.internal, "Attachable": s.attachable}


class DockerEngine(EngineAPI):
    """The Engine API on ``socket``, for networks of ``driver``."""

    def __init__(self, socket: Path, driver: str, timeout: float = TIMEOUT_S) -> None:
        super().__init__(socket, timeout)
        self.driver = driver

    async def networks(self) -> list[LocalNet]:
        listed = await self._call("GET", "/networks", params={"filters": json.dumps({"driver": [self.driver]})})
        found = []
        for n in listed if isinstance(listed, list) else ():
            if not isinstance(n, dict) or n.get("Driver") != self.driver:
                continue
            try:
                found.append(local_net(await self._call("GET", f"/networks/{n['Id']}")))
            except DockerError:
                continue  # removed meanwhile
        return found

    async def create(self, entry: Entry) -> str:
        r = await self._call("POST", "/networks/create", create_body(entry, self.driver))
        return str(r["Id"])

    async def remove(self, network_id: str) -> None:
        try:
            await self._call("DELETE", f"/networks/{network_id}")
        except DockerError as e:
            if "HTTP 404" not in str(e):
                raise

    async def events(self) -> AsyncIterator[str]:
        """Network events (their action: create, destroy, connect, disconnect) until the stream ends."""
        filters = {"filters": json.dumps({"type": ["network"]})}
        try:
            async with self._session(aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)) as s, \
                    s.get("http://docker/events", params=filters) as resp:
                if resp.status != 200:
                    raise DockerError(f"GET /events: HTTP {resp.status}")
                async for line in resp.content:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    yield str(ev.get("Action") or ev.get("status") or "")
        except (aiohttp.ClientError, OSError) as e:
            raise DockerUnavailable(f"Docker at {self.socket}: event stream: {e or type(e).__name__}") from None

