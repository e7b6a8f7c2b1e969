"""registry.outbox: endpoint entries written behind Docker's calls, in order, never lost for good."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pynetdrv.cluster.errors import EtcdUnavailable
from pynetdrv.registry import outbox as outbox_mod
from pynetdrv.registry.outbox import EndpointOutbox
from pynetdrv.registry.view import EndpointEntry

ENTRY = EndpointEntry("local/pool-a", "02:42:0a:4d:00:02", ("10.77.0.2",), "192.0.2.1")


class Writes:
    """The registry's two endpoint writes, recorded; each waits for `gate` and can be made to fail."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: set[str] = set()

    async def _write(self, what: str, endpoint_id: str) -> None:
        await self.gate.wait()
        if endpoint_id in self.fail:
            raise EtcdUnavailable(["http://127.0.0.1:2379"], f"{what} endpoint", "timed out")
        self.done.append((what, endpoint_id))

    async def put_endpoint(self, endpoint_id: str, entry: EndpointEntry) -> None:
        assert entry == ENTRY
        await self._write("put", endpoint_id)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._write("delete", endpoint_id)


async def test_before_start_a_write_is_made_inside_the_call() -> None:
    w = Writes()
    box = EndpointOutbox(w)
    await box.put("ep1", ENTRY)
    assert w.done == [("put", "ep1")]
    await box.delete("ep1")
    assert w.done == [("put", "ep1"), ("delete", "ep1")]


async def test_once_started_the_call_does_not_wait_for_etcd_and_writes_land_in_call_order() -> None:
    w = Writes()
    w.gate.clear()  # etcd is slow: nothing lands until the gate opens
    box = EndpointOutbox(w)
    await box.start()
    try:
        await asyncio.wait_for(box.put("ep1", ENTRY), 1.0)  # returns although the write cannot land
        await box.delete("ep1")
        await box.put("ep2", ENTRY)
        assert w.done == []
        w.gate.set()
        await asyncio.wait_for(box.drained(), 5.0)
        assert w.done == [("put", "ep1"), ("delete", "ep1"), ("put", "ep2")]
        assert box.written == 3
    finally:
        await box.stop()


async def test_a_failed_write_is_logged_and_the_next_ones_still_land(caplog: pytest.LogCaptureFixture) -> None:
    w = Writes()
    w.fail.add("bad")
    box = EndpointOutbox(w)
    await box.start()
    try:
        with caplog.at_level(logging.WARNING, logger="pynetdrv.registry.outbox"):
            await box.put("bad", ENTRY)
            await box.put("ep2", ENTRY)
            await asyncio.wait_for(box.drained(), 5.0)
        assert w.done == [("put", "ep2")]
        assert any("put of endpoint bad not made yet" in r.getMessage() and "127.0.0.1:2379" in r.getMessage()
                   for r in caplog.records)
    finally:
        await box.stop()


async def test_stop_lets_queued_writes_land_then_writes_are_inline_again() -> None:
    w = Writes()
    box = EndpointOutbox(w)
    await box.start()
    await box.put("ep1", ENTRY)
    await box.delete("ep0")
    await box.stop()
    assert w.done == [("put", "ep1"), ("delete", "ep0")]
    await box.put("ep3", ENTRY)
    assert w.done[-1] == ("put", "ep3")


async def test_stop_is_bounded_when_etcd_never_answers(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(outbox_mod, "DRAIN_S", 0.1)
    w = Writes()
    w.gate.clear()  # never opens
    box = EndpointOutbox(w)
    await box.start()
    await box.put("ep1", ENTRY)
    await box.put("ep2", ENTRY)
    with caplog.at_level(logging.WARNING, logger="pynetdrv.registry.outbox"):
        await asyncio.wait_for(box.stop(), 5.0)
    assert w.done == []
    assert any("not made before stopping" in r.getMessage() for r in caplog.records)
