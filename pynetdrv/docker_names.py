"""Docker's names for networks, for ``pynetdrv status``: people know a network
as ``myapp_backend``, not as ``3f9c0e1a2b4d``.

Read from the Engine API (``GET /networks``, one request) on Docker's unix
socket, within a short bound: status is an interactive command, and when
Docker does not answer (stopped, hung, no socket) it shows IDs alone and says
why.  Only the ``status`` command calls this, never a request handler (the
plugin must never wait on dockerd while dockerd waits on it).  Read-only: a
GET, nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

#: How long status waits for Docker's answer, all in (connect, request, body).
TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class DockerNames:
    """``names``: network ID -> name; empty with ``unavailable`` saying why."""

    names: Mapping[str, str]
    unavailable: str = ""


async def read_network_names(socket: Path, timeout: float = TIMEOUT_SECONDS) -> DockerNames:
    if not socket.exists():
        return DockerNames({}, f"no Docker socket at {socket}")
    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)), timeout=limit) as s,
                    s.get("http://docker/networks") as resp):
            if resp.status != 200:
                return DockerNames({}, f"Docker at {socket} answered HTTP {resp.status}")
            listed = await resp.json(content_type=None)
    except TimeoutError:
        return DockerNames({}, f"Docker at {socket} did not answer within {timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        return DockerNames({}, f"Docker at {socket} did not answer: {e or type(e).__name__}")
    if not isinstance(listed, list):
        return DockerNames({}, f"Docker at {socket} sent no network list")
    names = {str(n["Id"]): str(n["Name"]) for n in listed
             if isinstance(n, dict) and isinstance(n.get("Id"), str) and isinstance(n.get("Name"), str)}
    return DockerNames(names)


def network_label(network_id: str, names: Mapping[str, str] | None) -> str:
    """``3f9c0e1a2b4d myapp_backend``, or the short ID alone when Docker's name is unknown."""
    name = (names or {}).get(network_id)
    return f"{network_id[:12]} {name}" if name else network_id[:12]
