"""This host in the registry (keys and meaning: ``registry.view``): its record and endpoints put under
its own lease, kept alive; every host's records watched into a ``RegistryView``.

- Lease lost (expired while etcd was away, or etcd lost it): a new one is granted and this host's
  records are put again (``KeptLease``'s callback), from the local truth (``local()``), so nothing
  written before is trusted.
- A write that fails (etcd down) marks the registry stale; the runner puts everything again as soon
  as etcd answers (every ``RETRY_S``), so a container started or removed during an outage shows up
  on the other hosts without a restart.
- The watch survives etcd restarts and compaction (``cluster.watch``): a lost history is a full
  re-read of the prefix, and ``on_change`` follows either way.

No request handler waits for the watch: ``on_change`` is called from the runner task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pynetdrv.cluster.errors import EtcdError
from pynetdrv.cluster.etcd import EtcdClient
from pynetdrv.cluster.kv import Put, absent
from pynetdrv.cluster.lease import KeptLease
from pynetdrv.cluster.watch import watch_prefix
from pynetdrv.registry.view import EndpointEntry, HostEntry, RegistryView
from pynetdrv.store.etcd_keys import Keys
from pynetdrv.tasks import stop_task

log = logging.getLogger(__name__)

LEASE_TTL_S = 10
RETRY_S = 1.0


@dataclass(frozen=True)
class LocalRecords:
    """What this host has, from its own store: its record and its endpoints by id."""

    host: HostEntry
    endpoints: dict[str, EndpointEntry]


class Registry:
    def __init__(self, client: EtcdClient, keys: Keys, host: str,
                 local: Callable[[], Awaitable[LocalRecords]], on_change: Callable[[], Awaitable[None]],
                 ttl: int = LEASE_TTL_S) -> None:
        self._client, self._keys, self.host = client, keys, host
        self._local, self._on_change = local, on_change
        self.view = RegistryView(keys.registry())
        self._lease = KeptLease(client, ttl, on_new_lease=self._republish_on)
        self._stale = True
        #: This host was forgotten (``cluster forget-host``) while running: it publishes nothing more.
        self.forgotten = False
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # set once a first full read of the registry is in the view

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster registry")

    async def stop(self) -> None:
        """Stop watching and renewing.  The lease is NOT revoked: this host's records stay until it
        expires, so a restart within the TTL (an upgrade, a crash and its restart) re-publishes under
        a new lease before the other hosts ever drop this host's containers."""
        task, self._task = self._task, None
        await stop_task(task)
        await self._lease.close(revoke=False)

    # -- writes ------------------------------------------------------------------------------------
    async def put_endpoint(self, endpoint_id: str, entry: EndpointEntry) -> None:
        """Raises EtcdError (naming etcd) if it cannot be written now; the runner writes it later."""
        await self._write(lambda lease: self._client.put(self._keys.endpoint(self.host, endpoint_id),
                                                         entry.to_json(), lease))

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._write(lambda _: self._client.delete(self._keys.endpoint(self.host, endpoint_id)))

    async def put_host(self, entry: HostEntry) -> None:
        await self._write(lambda lease: self._client.put(self._keys.host(self.host), entry.to_json(), lease))

    async def _write(self, op: Callable[[int], Awaitable[int]]) -> None:
        if self.forgotten:
            raise EtcdError(self._client.names, "write to the registry",
                            f"host {self.host} was declared gone for good: restart pynetdrv with --rejoin")
        if not self._lease.id:
            self._stale = True
            raise EtcdError(self._client.names, "write to the registry", "this host has no lease yet")
        try:
            await op(self._lease.id)
        except EtcdError:
            self._stale = True
            raise

    async def republish(self) -> None:
        """Put this host's records again from the local truth, and delete its stale endpoints."""
        await self._republish_on(self._lease.id)

    async def _republish_on(self, lease: int) -> None:
        """The host record goes first, in a transaction that compares this host's tombstone: a host
        forgotten while it ran (or started while etcd was away: registry.tombstone could not check)
        never puts its old endpoints back."""
        if self.forgotten:
            self._stale = False
            return
        mine = await self._local()
        have = (await self._client.get_prefix(self._keys.endpoints(self.host))).as_dict()
        want = {self._keys.endpoint(self.host, eid): e.to_json() for eid, e in mine.endpoints.items()}
        stone = self._keys.tombstone(self.host)
        r = await self._client.txn([absent(stone)], [Put(self._keys.host(self.host), mine.host.to_json(), lease)])
        if not r.succeeded:
            self.forgotten, self._stale = True, False
            log.error("registry: host %s was declared gone for good (etcd key %s): its records are not published "
                      "any more; restart pynetdrv with --rejoin (docs/multihost.md)", self.host, stone.decode())
            return
        for key, value in want.items():
            kv = have.get(key)
            if kv is None or kv.value != value or kv.lease != lease:
                await self._client.put(key, value, lease)
        for key in set(have) - set(want):
            await self._client.delete(key)
        self._stale = False
        log.info("registry: host %s published with %d endpoint(s) (lease %x)", self.host, len(want), lease)

    # -- the runner --------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._lease.id:
            try:
                await self._lease.start()
            except EtcdError as e:
                log.warning("registry: %s; trying again in %.0f s", e, RETRY_S)
                await asyncio.sleep(RETRY_S)
        keeper = asyncio.create_task(self._keep_published(), name="cluster registry republish")
        try:
            await self._watch()
        finally:
            await stop_task(keeper)

    async def _keep_published(self) -> None:
        while True:
            if self._stale:
                try:
                    await self.republish()
                except EtcdError as e:
                    log.warning("registry: republish of host %s: %s", self.host, e)
            await asyncio.sleep(RETRY_S)

    async def _watch(self) -> None:
        while True:
            try:
                snap = await self._client.get_prefix(self._keys.registry())
                break
            except EtcdError as e:
                log.warning("registry: first read: %s; trying again in %.0f s", e, RETRY_S)
                await asyncio.sleep(RETRY_S)
        self.view.replace(snap)
        self.ready.set()
        await self._changed()
        async for event in watch_prefix(self._client, self._keys.registry(), snap.revision + 1):
            self.view.apply(event)
            mine = self.view.hosts.get(self.host)
            if event.kind != "put" and mine is None:
                self._stale = True  # our record vanished (lease lost, or deleted by hand): put it again
            await self._changed()

    async def _changed(self) -> None:
        try:
            await self._on_change()
        except Exception:
            log.exception("registry: applying a change failed (the next change or resync retries)")
