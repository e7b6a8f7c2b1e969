"""The create-once sync: a background task (cluster mode only, started once the socket serves) that
keeps this host's Docker and the catalog in step (``plan``), woken by the catalog's etcd watch, by
Docker's network events and by a periodic poll. It survives Docker and etcd being away: it logs one
line when one stops answering and one when it answers again, and retries with a bounded back-off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from pynetdrv.cluster.errors import EtcdError
from pynetdrv.createonce.catalog import CatalogStore, Entry, Spec
from pynetdrv.createonce.engine import DockerError, DockerUnavailable, Engine
from pynetdrv.createonce.plan import (
    Action,
    Create,
    Forget,
    Hold,
    Publish,
    Record,
    Remove,
    Tombstone,
    holders,
    plan,
    tombstoned,
)
from pynetdrv.tasks import stop_tasks

log = logging.getLogger(__name__)

POLL_S = 5.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0


class CreateOnceSync:
    def __init__(self, catalog: CatalogStore, engine: Engine, host: str, poll: float = POLL_S) -> None:
        self.catalog, self.engine, self.host, self.poll = catalog, engine, host, poll
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._down: dict[str, str] = {}  # "docker"/"etcd" -> why, while it does not answer
        self._failed: set[tuple[str, int, str]] = set()  # (name, generation, what) logged once

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name="create-once sync"),
                       asyncio.create_task(self._docker_events(), name="create-once docker events"),
                       asyncio.create_task(self._catalog_watch(), name="create-once catalog watch")]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await stop_tasks(tasks)

    def kick(self) -> None:
        self._kick.set()

    # -- the loop --------------------------------------------------------------------------------------
    async def _loop(self) -> None:
        delay = BACKOFF_MIN_S
        while True:
            self._kick.clear()
            ok = await self.run_once()
            delay = BACKOFF_MIN_S if ok else min(delay * 2, BACKOFF_MAX_S)
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on 3.11 wait_for can drop the stop's cancellation.
                async with asyncio.timeout(self.poll if ok else delay):
                    await self._kick.wait()

    async def run_once(self) -> bool:
        """One pass: read both sides, plan, act. False if Docker or etcd did not answer."""
        try:
            local = await self.engine.networks()
        except (DockerUnavailable, DockerError) as e:
            self._away("docker", str(e))
            return False
        self._back("docker")
        try:
            _, entries = await self.catalog.read()
        except EtcdError as e:
            self._away("etcd", str(e))
            return False
        self._back("etcd")
        for action in plan(self.host, entries, local):
            try:
                await self._apply(action)
            except DockerUnavailable as e:
                self._away("docker", str(e))
                return False
            except EtcdError as e:
                self._away("etcd", str(e))
                return False
        return True

    def _away(self, what: str, why: str) -> None:
        if what not in self._down:
            log.warning("create-once: %s does not answer (%s); retrying every %g s at most", what, why,
                        BACKOFF_MAX_S)
        self._down[what] = why

    def _back(self, what: str) -> None:
        if self._down.pop(what, None) is not None:
            log.info("create-once: %s answers again", what)

    async def _write(self, entry: Entry, what: str) -> bool:
        """CAS write; a lost race is planned again at once from a fresh read."""
        if await self.catalog.write(entry):
            return True
        log.debug("create-once: %s: catalog entry %s changed meanwhile; planning again", what, entry.name)
        self.kick()
        return False

    async def _forget(self, entry: Entry) -> None:
        """This host no longer has the network; a tombstone with no host left is deleted."""
        left = entry.without_host(self.host)
        if left.tombstone and not left.hosts and not left.holding:
            if await self.catalog.delete(entry):
                log.info("create-once: network %s is gone from every host; catalog entry deleted", entry.name)
            else:
                self.kick()
        else:
            await self._write(left, "forget")

    # -- actions ---------------------------------------------------------------------------------------
    async def _apply(self, a: Action) -> None:
        if isinstance(a, Publish):
            entry = Entry(a.name, a.generation, a.local.spec, {self.host: a.local.id},
                          revision=a.prior.revision if a.prior else 0)
            if await self._write(entry, "publish"):
                log.info("create-once: network %s (%s) published to the catalog, generation %d: every host "
                         "creates it", a.name, a.local.id[:12], a.generation)
        elif isinstance(a, Record):
            if a.local.generation is None and _subnets(a.local.spec) != _subnets(a.entry.spec):
                self._once(a.entry, "differs", "create-once: network %s on this host (subnets %s) was created by "
                           "hand with other subnets than the cluster's (%s); it is counted as the cluster's",
                           a.entry.name, _subnets(a.local.spec), _subnets(a.entry.spec))
            await self._write(a.entry.with_host(self.host, a.local.id), "record")
        elif isinstance(a, Create):
            await self._create(a.entry)
        elif isinstance(a, Tombstone):
            log.info("create-once: network %s was removed on this host: removed from the catalog; every host "
                     "removes it once no container there uses it", a.entry.name)
            gone = tombstoned(a.entry, self.host)
            if not gone.hosts and not gone.holding:
                if not await self.catalog.delete(a.entry):
                    self.kick()
            else:
                await self._write(gone, "tombstone")
        elif isinstance(a, Remove):
            await self._remove(a)
        elif isinstance(a, Hold):
            held = replace(a.entry, holding={**a.entry.holding, self.host: a.local.containers})
            if await self._write(held, "hold"):
                log.warning("create-once: network %s was removed (on %s) but stays on this host while %d "
                            "container(s) use it; hosts still holding it: %s", a.entry.name,
                            a.entry.removed_by or "?", a.local.containers, holders(held))
        elif isinstance(a, Forget):
            await self._forget(a.entry)

    async def _create(self, entry: Entry) -> None:
        try:
            network_id = await self.engine.create(entry)
        except DockerError as e:
            self._once(entry, "create", "create-once: could not create network %s (generation %d) here: %s",
                       entry.name, entry.generation, e)
            return
        log.info("create-once: network %s created here from the catalog (generation %d, subnets %s)", entry.name,
                 entry.generation, ", ".join(s.subnet for s in entry.spec.subnets) or "-")
        await self._write(entry.with_host(self.host, network_id), "record")

    async def _remove(self, a: Remove) -> None:
        try:
            await self.engine.remove(a.local.id)
        except DockerError as e:
            self._once(a.entry, "remove", "create-once: could not remove network %s here: %s", a.local.name, e)
            return
        log.info("create-once: network %s (%s) removed here: it was removed from the cluster", a.local.name,
                 a.local.id[:12])
        if a.entry is not None and a.entry.tombstone:
            await self._forget(a.entry)

    def _once(self, entry: Entry | None, what: str, msg: str, *args: object) -> None:
        key = (entry.name if entry else "", entry.generation if entry else 0, what)
        if key not in self._failed:
            self._failed.add(key)
            log.warning(msg, *args)

    # -- wake-ups --------------------------------------------------------------------------------------
    async def _docker_events(self) -> None:
        await _forever(self._docker_events_once, "docker events")

    async def _docker_events_once(self) -> None:
        async for _ in self.engine.events():
            self.kick()

    async def _catalog_watch(self) -> None:
        await _forever(self._catalog_watch_once, "catalog watch")

    async def _catalog_watch_once(self) -> None:
        async for _ in self.catalog.changes():
            self.kick()


def _subnets(spec: Spec) -> str:
    return ", ".join(sorted(s.subnet for s in spec.subnets)) or "-"


async def _forever(once: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``once`` again after it ends or fails (the poll covers the gap), with a back-off."""
    delay = BACKOFF_MIN_S
    while True:
        try:
            await once()
            delay = BACKOFF_MIN_S
        except (DockerUnavailable, DockerError, EtcdError) as e:
            log.debug("create-once: %s: %s", what, e)
            delay = min(delay * 2, BACKOFF_MAX_S)
        await asyncio.sleep(delay)
