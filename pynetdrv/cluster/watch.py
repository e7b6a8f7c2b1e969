"""A prefix watch that survives etcd restarts and compaction.

aetcd's watches do not reconnect (etcd.md pitfall 1). `watch_prefix` watches again from the last
revision seen + 1 after a broken stream, so nothing is lost while etcd was down; if that history was
compacted meanwhile, it reads the prefix again in full and yields one `resync` event with the
snapshot, then goes on from the snapshot's revision + 1. The consumer handles three kinds: put,
delete, resync (replace everything known under the prefix)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from pynetdrv.cluster.errors import EtcdUnavailable
from pynetdrv.cluster.etcd import EtcdClient, WatchCompacted
from pynetdrv.cluster.kv import WatchEvent

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0


async def watch_prefix(client: EtcdClient, prefix: bytes, start_revision: int) -> AsyncIterator[WatchEvent]:
    """Every change under `prefix` from `start_revision` on (typically a snapshot's revision + 1),
    forever, across etcd outages; stops when the consumer stops iterating (or cancels its task)."""
    if start_revision < 1:
        raise ValueError(f"watch {prefix!r}: start_revision must be >= 1, not {start_revision}")
    next_rev = start_revision
    delay = RETRY_MIN_S
    while True:
        try:
            async for ev in client.watch_once(prefix, next_rev):
                next_rev = ev.revision + 1
                delay = RETRY_MIN_S
                yield ev
            # The stream ended without an error (aetcd cancelled it): watch again.
        except WatchCompacted as e:
            log.warning("etcd %s: watch of %r lost its history (%s): reading it again in full",
                        ",".join(client.names), prefix, e)
            try:
                snap = await client.get_prefix(prefix)
            except EtcdUnavailable as e2:
                log.warning("%s; retrying in %.1f s", e2, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            next_rev = snap.revision + 1
            delay = RETRY_MIN_S
            yield WatchEvent("resync", snap.revision, snapshot=snap)
        except EtcdUnavailable as e:
            log.warning("%s; watching again from revision %d in %.1f s", e, next_rev, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
