"""Talking to the plugin's HTTP surface the way dockerd does, shared by the
HTTP unit tests (the ``client`` fixture serving build_app is in conftest)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

ACCEPT = "application/vnd.docker.plugins.v1.2+json"

Client = TestClient[web.Request, web.Application]


async def post(client: Client, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """POST like dockerd does: Accept v1.2, no Content-Type, JSON body (or empty)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode() + b"\n")
    async with client.post(path, data=data, headers={"Accept": ACCEPT}, skip_auto_headers={"Content-Type"}) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text and resp.status != 404 else text)


async def raw_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes = b"",
                   host: str = "") -> tuple[int, dict[str, str], bytes]:
    """A byte-exact Go-style request: empty Host header (Docker up to
    20.10.25), no Content-Type, explicit Content-Length."""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\nAccept: {ACCEPT}\r\nAccept-Encoding: gzip\r\n"
        "Connection: close\r\n\r\n".encode() + body
    )
    await writer.drain()
    status_line = (await reader.readline()).decode()
    headers = {}
    while (line := (await reader.readline()).decode().strip()):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    payload = await reader.readexactly(int(headers["content-length"]))
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1]), headers, payload
