"""A lease kept alive in the background, re-granted when etcd lost it.

aetcd has no keepalive loop (its issue #33). `KeptLease` refreshes every ttl/3; when etcd says the
lease is gone (it expired during an outage longer than the TTL), it grants a new one and calls
`on_new_lease(lease_id)` so the owner writes its keys again under it (e.g. a host's registration)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Self

from pynetdrv.cluster.errors import EtcdError, EtcdLeaseLost
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.tasks import stop_task

log = logging.getLogger(__name__)


class KeptLease:
    def __init__(self, client: EtcdClient, ttl: int,
                 on_new_lease: Callable[[int], Awaitable[None]] | None = None) -> None:
        if ttl < 2:
            raise ValueError(f"a kept lease needs a ttl >= 2 s (refreshed every ttl/3), not {ttl}")
        self._client = client
        self.ttl = ttl
        self._on_new_lease = on_new_lease
        self.id = 0
        self.regrants = 0  # how many times the lease was lost and granted again
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Grant the lease (raises EtcdUnavailable if etcd is down) and start keeping it alive."""
        if self._task is not None:
            raise RuntimeError("lease already started")
        self.id = await self._client.grant_lease(self.ttl)
        self._task = asyncio.create_task(self._keepalive(), name=f"etcd-lease-{self.id:x}")
        return self.id

    async def _keepalive(self) -> None:
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                try:
                    if await self._client.refresh_lease(self.id) > 0:
                        continue
                except EtcdLeaseLost:
                    pass
                log.warning("etcd lease %x is gone (expired): granting a new one", self.id)
                self.id = await self._client.grant_lease(self.ttl)
                self.regrants += 1
                if self._on_new_lease is not None:
                    await self._on_new_lease(self.id)
            except EtcdError as e:
                log.warning("keeping etcd lease %x alive: %s", self.id, e)
            except Exception:  # the owner's callback failed: keep the lease alive regardless
                log.exception("etcd lease %x: the new-lease callback failed", self.id)

    async def close(self, revoke: bool = True) -> None:
        """Stop refreshing; with `revoke`, drop the lease now (its keys go at once). Idempotent."""
        task, self._task = self._task, None
        await stop_task(task)
        if revoke and self.id:
            with contextlib.suppress(EtcdError):
                await self._client.revoke_lease(self.id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
