"""The restart-policy watch: keeps the record (``record``) of which of this host's addresses
belong to a container dockerd starts again, from the Engine API, in the background.

It reads Docker (``GET /containers/json``, then ``GET /containers/ID/json`` for the restart
policy of a container it has not seen lately) a moment after an address was handed out (a
container is starting on one of our networks) and every ``interval`` seconds (a container slower
to start than that moment is caught by the next round), and saves the record when it changed.
Only running containers on our networks count.  Docker not answering (stopped, restarting,
hung) changes nothing: the last record stays, and the watch tries again.
Never called from a request handler: dockerd may be waiting on us."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from pynetdrv.engine_api import DockerError, DockerUnavailable, EngineAPI
from pynetdrv.returning.keep import ReturningAddresses
from pynetdrv.returning.record import Holder, save
from pynetdrv.tasks import stop_task

log = logging.getLogger(__name__)

INTERVAL_S = 10.0
#: After an address is handed out: let dockerd finish starting the container first.
SETTLE_S = 1.0
#: A container's restart policy is read again after this long (``docker update --restart``).
POLICY_TTL_S = 300.0


class Containers(Protocol):
    async def running(self) -> list[dict[str, Any]]:
        """``GET /containers/json``: the running containers, as Docker lists them."""

    async def restart_policy(self, container_id: str) -> str:
        """``HostConfig.RestartPolicy.Name`` of the container ("" = no)."""


class DockerContainers(EngineAPI):
    async def running(self) -> list[dict[str, Any]]:
        listed = await self._call("GET", "/containers/json")
        return [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []

    async def restart_policy(self, container_id: str) -> str:
        inspected = await self._call("GET", f"/containers/{container_id}/json")
        policy = ((inspected or {}).get("HostConfig") or {}).get("RestartPolicy") or {}
        return str(policy.get("Name") or "")


def addresses_on(container: Mapping[str, Any], networks: set[str]) -> list[str]:
    """The container's IPv4 and IPv6 addresses on the given networks (IDs)."""
    found = []
    for ep in ((container.get("NetworkSettings") or {}).get("Networks") or {}).values():
        if isinstance(ep, dict) and ep.get("NetworkID") in networks:
            found += [str(ep[k]) for k in ("IPAddress", "GlobalIPv6Address") if ep.get(k)]
    return found


class RestartWatch:
    def __init__(self, containers: Containers, our_networks: Callable[[], Awaitable[set[str]]], path: Path,
                 returning: ReturningAddresses, interval: float = INTERVAL_S, settle: float = SETTLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._containers, self._our_networks, self._path = containers, our_networks, path
        self._returning, self._interval, self._settle, self._clock = returning, interval, settle, clock
        self._policies: dict[str, tuple[str, float]] = {}  # container -> (policy, read at)
        self._task: asyncio.Task[None] | None = None
        self._unavailable = False

    async def refresh(self) -> bool:
        """Read Docker once; the record becomes what it says (saved if changed). False, changing
        nothing, if Docker did not answer."""
        try:
            networks = await self._our_networks()
            holders: dict[str, Holder] = {}
            for c in await self._containers.running() if networks else []:
                addresses = addresses_on(c, networks)
                if not addresses:
                    continue
                cid = str(c.get("Id", ""))
                name = str((c.get("Names") or [cid[:12]])[0]).lstrip("/")
                policy = await self._policy(cid)
                holders.update({a: Holder(cid, name, policy) for a in addresses})
        except (DockerUnavailable, DockerError) as e:
            if not self._unavailable:  # normal at boot: pynetdrv starts before Docker
                log.info("restart policies not read (%s); the last record stays: %s", e, self._path)
            self._unavailable = True
            return False
        if self._unavailable:
            log.info("restart policies read from Docker again")
        self._unavailable = False
        live = {h.container for h in holders.values()}
        self._policies = {c: p for c, p in self._policies.items() if c in live}
        if holders != self._returning.holders:
            self._returning.holders = holders
            try:
                save(self._path, holders)
            except OSError as e:
                log.warning("restart record %s not saved: %s", self._path, e)
        return True

    async def _policy(self, container_id: str) -> str:
        known = self._policies.get(container_id)
        now = self._clock()
        if known is not None and now - known[1] < POLICY_TTL_S:
            return known[0]
        try:
            policy = await self._containers.restart_policy(container_id)
        except DockerError:
            policy = ""  # removed meanwhile
        self._policies[container_id] = (policy, now)
        return policy

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="restart-policy watch")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        activity = self._returning.activity
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(activity.wait(), self._interval)
            if activity.is_set():
                # Cleared before the pause: a container starting during it or the read makes
                # another round (cleared after, its start would wait for the interval).
                activity.clear()
                await asyncio.sleep(self._settle)
            try:
                await self.refresh()
            except Exception:  # a bug here must not end the watch: the record just stays as it was
                log.exception("restart-policy watch: refresh failed")
