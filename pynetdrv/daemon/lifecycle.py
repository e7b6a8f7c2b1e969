"""Components: named parts of the daemon with an async ``start`` and ``stop``.

``running(components)`` starts them in order and, when its block ends, stops
them in reverse.  If one fails to start, only those that started are
stopped (in reverse) and the failure is raised.  Every start and stop is in
the log with its duration (at debug level), so a slow or failing start
names its part:

    starting store (sqlite:/var/lib/pynetdrv/state.db)
    started store in 3 ms

and one info line sums up a start (``started in 412 ms: state lock 0 ms,
store 3 ms, ...``) and a stop.  The per-part lines are debug because a
refused start must stay one line on stderr at the default level: the
caller reports the error it gets (``pynetdrv: state file ... is
truncated``), and the parts started before it have nothing to add.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

log = logging.getLogger(__name__)


class Component(Protocol):
    #: Short and stable: it is in the log and in start-up errors.
    name: str

    def detail(self) -> str:
        """What exactly it is (a path, a URL, a setting) for the start line; "" for nothing."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Called only after ``start`` returned; undoes what it did."""


@asynccontextmanager
async def running(
    components: Sequence[Component],
    on_start_failure: Callable[[Component, BaseException], None] | None = None,
) -> AsyncIterator[None]:
    """Start ``components`` in order; stop the started ones in reverse when
    the block ends or a start fails (``on_start_failure`` is called first,
    with the component that failed and the error)."""
    began = time.monotonic()
    started: list[Component] = []
    times: list[str] = []
    for component in components:
        try:
            times.append(f"{component.name} {await _start(component)}")
        except BaseException as e:
            if on_start_failure is not None:
                on_start_failure(component, e)
            await _stop_all(started)
            raise
        started.append(component)
    log.info("started in %s: %s", _ms(began), ", ".join(times))
    try:
        yield
    finally:
        stopping = time.monotonic()
        await _stop_all(started)
        log.info("stopped in %s", _ms(stopping))


async def _start(component: Component) -> str:
    """Start it; how long that took."""
    detail = component.detail()
    log.debug("starting %s%s", component.name, f" ({detail})" if detail else "")
    began = time.monotonic()
    try:
        await component.start()
    except BaseException as e:
        log.debug("could not start %s after %s: %s: %s", component.name, _ms(began), type(e).__name__, e)
        raise
    took = _ms(began)
    log.debug("started %s in %s", component.name, took)
    return took


async def _stop_all(started: list[Component]) -> None:
    """Reverse order; a stop that fails is logged and the others still run."""
    for component in reversed(started):
        log.debug("stopping %s", component.name)
        began = time.monotonic()
        try:
            await component.stop()
        except Exception as e:
            log.error("could not stop %s cleanly: %s: %s", component.name, type(e).__name__, e)
            continue
        log.debug("stopped %s in %s", component.name, _ms(began))


def _ms(began: float) -> str:
    return f"{(time.monotonic() - began) * 1000:.0f} ms"
