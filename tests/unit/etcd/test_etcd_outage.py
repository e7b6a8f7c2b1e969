"""etcd down or hung: calls fail within the bound with an error naming etcd; the same client works
again once etcd is back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest
from etcd_server import EtcdServer

from pynetdrv.cluster.errors import EtcdUnavailable
from pynetdrv.cluster.etcd import EtcdClient


async def _until_ok(c: EtcdClient, key: bytes, deadline_s: float) -> float:
    start = time.monotonic()
    while True:
        try:
            await c.get(key)
            return time.monotonic() - start
        except EtcdUnavailable:
            if time.monotonic() - start > deadline_s:
                raise
            await asyncio.sleep(0.1)


async def test_stopped_etcd_fails_fast_and_the_same_client_recovers(etcd_restartable: EtcdServer,
                                                                   etcd_prefix: bytes) -> None:
    s = etcd_restartable
    async with EtcdClient.from_url(f"etcd://{s.endpoint}", timeout=1) as c:
        await c.put(etcd_prefix + b"k", b"before")
        s.stop()
        for call in (c.put(etcd_prefix + b"k", b"during"), c.get(etcd_prefix + b"k"),
                     c.put_if_absent(etcd_prefix + b"n", b"x"), c.grant_lease(5)):
            start = time.monotonic()
            with pytest.raises(EtcdUnavailable) as e:
                await call
            assert time.monotonic() - start < 2.5
            assert str(e.value).startswith(f"etcd {s.endpoint} unavailable: ")
        s.start()
        assert await _until_ok(c, etcd_prefix + b"k", 8.0) < 8.0
        kv = await c.get(etcd_prefix + b"k")
        assert kv is not None and kv.value == b"before"  # nothing written while it was down
        assert await c.get(etcd_prefix + b"n") is None
        assert await c.put_if_absent(etcd_prefix + b"n", b"after") == (True, None)


async def test_hung_etcd_fails_within_the_deadline(etcd_restartable: EtcdServer, etcd_prefix: bytes) -> None:
    s = etcd_restartable
    async with EtcdClient.from_url(f"etcd://{s.endpoint}", timeout=1) as c:
        await c.put(etcd_prefix + b"k", b"v")
        s.pause()
        try:
            start = time.monotonic()
            with pytest.raises(EtcdUnavailable, match=r"unavailable: put .* failed: DEADLINE_EXCEEDED"):
                await c.put(etcd_prefix + b"k", b"hung")
            assert time.monotonic() - start < 2.5
        finally:
            s.resume()
        assert await _until_ok(c, etcd_prefix + b"k", 8.0) < 8.0


async def test_nothing_listening_fails_fast_naming_every_endpoint() -> None:
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    async with EtcdClient.from_url(url, timeout=1) as c:
        start = time.monotonic()
        with pytest.raises(EtcdUnavailable) as e:
            await c.get(b"/k")
        assert time.monotonic() - start < 2.5
    assert str(e.value).startswith(f"etcd 127.0.0.1:{ports[0]},127.0.0.1:{ports[1]} unavailable: get b'/k' failed")


async def test_second_endpoint_is_used_when_the_first_is_down(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    async with EtcdClient.from_url(f"etcd://127.0.0.1:{dead},{etcd_server.endpoint}", timeout=2) as c:
        await c.put(etcd_prefix + b"k", b"via-second")
    assert etcd_server.count_prefix(etcd_prefix) == 1


async def test_host_names_are_resolved_for_several_endpoints(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    async with EtcdClient.from_url(f"etcd://localhost:{dead},localhost:{etcd_server.client_port}", timeout=2) as c:
        await c.put(etcd_prefix + b"k", b"via-localhost")
    assert etcd_server.count_prefix(etcd_prefix) == 1


async def test_closing_with_a_watch_open_on_a_hung_etcd_is_bounded(etcd_restartable: EtcdServer,
                                                                   etcd_prefix: bytes) -> None:
    """Shutting down (the daemon's stop, a read-only command's end) must not wait on a hung etcd."""
    s = etcd_restartable
    c = EtcdClient.from_url(f"etcd://{s.endpoint}", timeout=1)
    rev = (await c.get_prefix(etcd_prefix)).revision
    events = c.watch_once(etcd_prefix, rev + 1)
    first = asyncio.ensure_future(anext(events))
    await c.put(etcd_prefix + b"k", b"v")
    assert (await asyncio.wait_for(first, 5)).kv.value == b"v"
    waiting = asyncio.ensure_future(anext(events))  # the stream is open and waiting
    await asyncio.sleep(0.2)
    s.pause()
    started = time.monotonic()
    try:
        await asyncio.wait_for(c.close(), 10)
        assert time.monotonic() - started < 3
    finally:
        s.resume()
        waiting.cancel()
        with contextlib.suppress(BaseException):
            await waiting
        with contextlib.suppress(BaseException):
            await events.aclose()
