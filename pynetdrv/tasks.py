"""Stopping the daemon's background tasks for sure, and in bounded time.

`task.cancel(); await task` can wait forever on Python 3.11: `asyncio.wait_for` returns its inner
call's result, and drops the cancellation, when both land in the same loop iteration (cpython
gh-86296, fixed in 3.12), and a loop around it then goes on as if nothing happened. `stop_task`
cancels once and gives the task's clean-up (its `finally:` blocks) `GRACE_S` to run, then cancels
again for as long as it runs, and gives up, saying so, after a bound: a stop (the daemon's
shutdown, a component's restart) never hangs on a task that will not end."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
GRACE_S = 2.0
RECANCEL_S = 0.5


async def stop_task(task: asyncio.Task[Any] | None, timeout: float = STOP_TIMEOUT_S) -> None:
    """Cancel `task` until it has ended (at most `timeout` s). An error it ended with is logged, not
    raised: stopping must go on to the next thing to stop."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = GRACE_S
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.error("task %r did not stop within %g s of being cancelled; left behind", task.get_name(), timeout)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(pause, left))
        pause = RECANCEL_S
    if not task.cancelled() and task.exception() is not None:
        log.error("task %r had failed: %r", task.get_name(), task.exception())


async def stop_tasks(tasks: list[asyncio.Task[Any]], timeout: float = STOP_TIMEOUT_S) -> None:
    """`stop_task` for each, concurrently (one bound for all)."""
    await asyncio.gather(*(stop_task(t, timeout) for t in tasks))
