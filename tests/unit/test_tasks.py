"""pynetdrv.tasks: stopping a background task for sure, in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pynetdrv import tasks
from pynetdrv.tasks import stop_task, stop_tasks


async def _swallows_one_cancel(state: dict[str, int]) -> None:
    """What a loop around 3.11's wait_for does when the cancel lands as its inner call completes."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state["swallowed"] += 1
            if state["swallowed"] > 1:
                raise


async def test_a_task_that_drops_the_first_cancellation_is_still_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "GRACE_S", 0.05)
    state = {"swallowed": 0}
    task = asyncio.create_task(_swallows_one_cancel(state))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_task(task, timeout=3)
    assert task.cancelled() and state["swallowed"] == 2


async def test_a_task_that_never_ends_is_left_after_the_bound_and_named(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn(), name="stubborn one")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stop_task(task, timeout=0.5)
    assert 0.4 < loop.time() - started < 2 and not task.done()
    assert any("'stubborn one' did not stop within 0.5 s" in r.getMessage() for r in caplog.records)
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert task.done()


async def test_clean_up_in_finally_gets_its_grace_before_a_second_cancel() -> None:
    cleaned: list[str] = []

    async def with_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.3)  # e.g. cancelling a watch on etcd
            cleaned.append("done")

    task = asyncio.create_task(with_cleanup())
    await asyncio.sleep(0)
    await stop_task(task)
    assert cleaned == ["done"] and task.cancelled()


async def test_an_error_the_task_ended_with_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("broken keeper")

    task = asyncio.create_task(fails(), name="keeper")
    await asyncio.sleep(0)
    await stop_task(task)
    assert any("'keeper' had failed" in r.getMessage() and "broken keeper" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)


async def test_stop_tasks_stops_all_and_none_is_fine() -> None:
    ts = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(3)]
    await asyncio.sleep(0)
    await stop_tasks(ts)
    await stop_task(None)
    assert all(t.cancelled() for t in ts)
