"""This host's endpoint writes to the registry, made behind Docker's calls instead of inside them.

An etcd write costs a round trip to etcd and a raft commit (20-30 ms measured in the lab, more on a
real network), and a container's life has two of them (its endpoint put, then deleted), each one
inside a call Docker waits for before it starts or removes the container. Nothing in that call
needs the write to have landed: the endpoint's address was already reserved in etcd (that write
stays inline: it is what makes the address unique), the local store already holds the endpoint, and
the other hosts only need the entry by the time a packet is sent to it.

So `EndpointOutbox` queues each put or delete and one background task writes them in the order
they were queued (a put and then a delete of the same endpoint never land the other way round). A
write that fails is not retried here: the registry marks itself stale and republishes this host's
endpoints from the local store (the truth) as soon as etcd answers, which also puts or deletes what
this queue dropped. Before `start` (and after `stop`) writes are made inline, as they were before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from pynetdrv.cluster.errors import EtcdError
from pynetdrv.registry.view import EndpointEntry
from pynetdrv.tasks import stop_task

log = logging.getLogger(__name__)

#: How long `stop` lets queued writes land before it gives up on them (the next start republishes).
DRAIN_S = 2.0


class EndpointWrites(Protocol):
    """The registry's endpoint writes (``registry.Registry``); they raise EtcdError naming etcd."""

    async def put_endpoint(self, endpoint_id: str, entry: EndpointEntry) -> None: ...

    async def delete_endpoint(self, endpoint_id: str) -> None: ...


class EndpointOutbox:
    def __init__(self, registry: EndpointWrites) -> None:
        self._registry = registry
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # writes that landed (tests wait on it)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cluster endpoint writes")

    async def stop(self) -> None:
        """Let queued writes land for up to `DRAIN_S`, then stop the writer."""
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)
        await asyncio.wait({task}, timeout=DRAIN_S)
        await stop_task(task)
        if not self._queue.empty():
            log.warning("registry: %d endpoint write(s) not made before stopping (the next start republishes)",
                        self._queue.qsize())

    async def put(self, endpoint_id: str, entry: EndpointEntry) -> None:
        await self._submit(endpoint_id, "put", lambda: self._registry.put_endpoint(endpoint_id, entry))

    async def delete(self, endpoint_id: str) -> None:
        await self._submit(endpoint_id, "delete", lambda: self._registry.delete_endpoint(endpoint_id))

    async def drained(self) -> None:
        """Wait until every write queued so far has been tried (for tests and an orderly stop)."""
        await self._queue.join()

    async def _submit(self, endpoint_id: str, what: str, op: Callable[[], Awaitable[None]]) -> None:
        async def logged() -> None:
            try:
                await op()
                self.written += 1
            except EtcdError as e:
                log.warning("registry: %s of endpoint %s not made yet (made when etcd answers): %s",
                            what, endpoint_id[:12], e)

        if self._task is None:
            await logged()
        else:
            self._queue.put_nowait(logged)

    async def _run(self) -> None:
        while True:
            op = await self._queue.get()
            try:
                if op is None:
                    return
                await op()
            except Exception:
                log.exception("registry: an endpoint write failed (the next republish makes it)")
            finally:
                self._queue.task_done()

