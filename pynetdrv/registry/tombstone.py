"""A forgotten host coming back (``registry.forget`` wrote its tombstone): checked at start, before
this host serves or publishes anything.

Its addresses, pool uses and VNIs were freed and may be someone else's now; its SQLite file still
names them.  So:

- no tombstone: nothing to do;
- a tombstone and no cluster network in the local state (a fresh state file): nothing stale can
  be published; the tombstone is removed and the host joins as a new one;
- a tombstone and cluster records: start refused (``HostForgotten``, one line naming the
  tombstone and the way out), unless ``--rejoin``: this host's cluster networks and their
  endpoints are dropped from its state file first (their bridges and veths are then orphans the
  start-up reconcile removes), then the tombstone; Docker's networks and containers must be made
  again (docs/multihost.md, "A host gone for good").

etcd unreachable at start: the check is skipped with a warning (the daemon starts without etcd,
as ever); it runs again at the next start.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from pynetdrv.cluster.errors import EtcdError, HostForgotten
from pynetdrv.cluster.kv import KV, Delete, TxnResult, value_is
from pynetdrv.registry.member import Networks, cluster_of
from pynetdrv.store.etcd_keys import Keys

log = logging.getLogger(__name__)


class Client(Protocol):
    async def get(self, key: bytes) -> KV | None: ...

    async def txn(self, compare: Any, success: Any = (), failure: Any = ()) -> TxnResult: ...


class LocalStore(Networks, Protocol):
    async def delete_endpoint(self, endpoint_id: str) -> bool: ...

    async def delete_network(self, network_id: str) -> bool: ...


async def check_tombstone(client: Client, keys: Keys, host: str, local: LocalStore, rejoin: bool,
                          state: str = "the state file") -> None:
    """Raises HostForgotten if ``host`` was forgotten and still holds cluster records (see above)."""
    try:
        stone = await client.get(keys.tombstone(host))
    except EtcdError as e:
        log.warning("cluster: could not check whether host %s was forgotten (checked at the next start): %s", host, e)
        return
    if stone is None:
        return
    nets = [n for n in await local.list_networks() if cluster_of(n) is not None]
    eps = [ep for n in nets for ep in await local.list_endpoints(n.network_id)]
    at = _at(stone.value)
    if nets and not rejoin:
        raise HostForgotten(
            f"host {host} was declared gone for good by 'pynetdrv cluster forget-host' at {at} (etcd key "
            f"{stone.key.decode()}), and {state} still holds {len(nets)} cluster network(s) with {len(eps)} "
            "endpoint(s) whose addresses may be others' now: start with --rejoin to drop them from this "
            "host's state first, or with a new state file (docs/multihost.md, 'A host gone for good')")
    for ep in eps:
        await local.delete_endpoint(ep.endpoint_id)
    for n in nets:
        await local.delete_network(n.network_id)
    if nets:
        log.warning("cluster: host %s was forgotten at %s; --rejoin dropped its %d cluster network(s) and %d "
                    "endpoint(s) from %s: remove and create those Docker networks and containers again",
                    host, at, len(nets), len(eps), state)
    await client.txn([value_is(stone.key, stone.value)], [Delete(stone.key)])
    log.info("cluster: tombstone of host %s (forgotten at %s) removed: joining as a new host", host, at)


def _at(value: bytes) -> str:
    try:
        return str(json.loads(value).get("at", "?"))
    except (ValueError, AttributeError):
        return "?"
