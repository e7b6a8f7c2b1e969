"""This host's Docker Engine API on its unix socket: one GET/POST/DELETE within a time bound,
with Docker not answering and Docker answering an error told apart.

Only background tasks use it (create-once, the restart-policy watch), never a request handler:
dockerd may be waiting on us while we would wait on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

TIMEOUT_S = 10.0


class DockerUnavailable(Exception):
    """Docker did not answer (no socket, refused, timed out)."""


class DockerError(Exception):
    """Docker answered with an error."""


class EngineAPI:
    def __init__(self, socket: Path, timeout: float = TIMEOUT_S) -> None:
        self.socket, self.timeout = socket, timeout

    def _session(self, timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.socket)),
                                     timeout=timeout or aiohttp.ClientTimeout(total=self.timeout))

    async def _call(self, method: str, path: str, body: object = None, params: dict[str, str] | None = None) -> Any:
        try:
            async with self._session() as s, \
                    s.request(method, "http://docker" + path, json=body, params=params) as resp:
                text = await resp.text()
                if resp.status >= 300:
                    raise DockerError(f"{method} {path}: HTTP {resp.status}: {_message(text)}")
                return json.loads(text) if text.strip() else None
        except TimeoutError:
            raise DockerUnavailable(f"Docker at {self.socket} did not answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise DockerUnavailable(f"Docker at {self.socket} did not answer: {e or type(e).__name__}") from None
        except ValueError as e:
            raise DockerError(f"{method} {path}: not JSON: {e}") from None


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text)).strip()
    except (ValueError, AttributeError):
        return text.strip()
