"""What one host must do so its Docker matches the catalog, and the catalog matches its Docker.
Pure: no I/O, so every rule is unit-tested over plain values (tests/unit/test_create_once_plan.py).

Per network name, with ``entry`` the catalog's and ``local`` this host's Docker network of our driver:

==============  ============================  =====================================================
catalog entry   local Docker network          action
==============  ============================  =====================================================
none            none                          nothing
none            made by a user                Publish (generation 1)
none            made by us (label)            Remove when no container uses it, else nothing
live            none, host not in entry       Create (then Record)
live            none, host in entry           Tombstone (``docker network rm`` ran here)
live            the one recorded / a user's   Record (a user's same-name network joins)
live            ours of another generation    Remove when empty (stale), Create comes next
tombstone       none, host in entry           Forget this host (entry deleted with the last one)
tombstone       the removed one               Remove when empty, else Hold (count in ``holding``)
tombstone       a new one (made after rm)     Publish (generation + 1): re-creating a name works
==============  ============================  =====================================================

"the removed one" is the local network whose ID the entry recorded for this host, or one we made
for the entry's generation (label ``GENERATION_LABEL``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pynetdrv.createonce.catalog import Entry, Spec

#: Set on networks the sync creates: the catalog generation they were made for.
GENERATION_LABEL = "pynetdrv.create-once.generation"


@dataclass(frozen=True)
class LocalNet:
    """A network of our driver in this host's Docker."""

    id: str
    name: str
    spec: Spec
    containers: int = 0
    #: GENERATION_LABEL's value if we created it, else None (a user did)
    generation: int | None = None


@dataclass(frozen=True)
class Publish:
    name: str
    local: LocalNet
    generation: int
    prior: Entry | None  # the tombstone it replaces, if any


@dataclass(frozen=True)
class Record:
    entry: Entry
    local: LocalNet


@dataclass(frozen=True)
class Create:
    entry: Entry


@dataclass(frozen=True)
class Tombstone:
    entry: Entry


@dataclass(frozen=True)
class Remove:
    local: LocalNet
    entry: Entry | None


@dataclass(frozen=True)
class Hold:
    entry: Entry
    local: LocalNet


@dataclass(frozen=True)
class Forget:
    entry: Entry


Action = Publish | Record | Create | Tombstone | Remove | Hold | Forget


def plan(host: str, catalog: Mapping[str, Entry], local: Sequence[LocalNet]) -> list[Action]:
    """The actions for ``host``, in name order. Idempotent: once carried out, planning again over the
    new state gives no action (except Hold/Remove waiting for containers to go)."""
    by_name = {n.name: n for n in local}
    actions: list[Action] = []
    for name in sorted(set(catalog) | set(by_name)):
        a = _one(host, catalog.get(name), by_name.get(name))
        if a is not None:
            actions.append(a)
    return actions


def _one(host: str, entry: Entry | None, local: LocalNet | None) -> Action | None:
    if entry is None:
        if local is None:
            return None
        if local.generation is not None:  # ours, and its entry is gone: a leftover
            return Remove(local, None) if local.containers == 0 else None
        return Publish(local.name, local, 1, None)
    if not entry.tombstone:
        if local is None:
            return Tombstone(entry) if host in entry.hosts else Create(entry)
        if local.generation is not None and local.generation != entry.generation and \
                entry.hosts.get(host) != local.id:
            return Remove(local, entry) if local.containers == 0 else None
        return None if entry.hosts.get(host) == local.id else Record(entry, local)
    # tombstone
    if local is None:
        return Forget(entry) if host in entry.hosts or host in entry.holding else None
    removed_one = entry.hosts.get(host) == local.id or local.generation == entry.generation
    if not removed_one:
        return Publish(local.name, local, entry.generation + 1, entry)
    if local.containers == 0:
        return Remove(local, entry)
    return None if entry.holding.get(host) == local.containers else Hold(entry, local)


def tombstoned(entry: Entry, host: str) -> Entry:
    """The entry after ``docker network rm`` on ``host``: removed, this host no longer has it."""
    from dataclasses import replace

    return replace(entry, tombstone=True, removed_by=host).without_host(host)


def holders(entry: Entry) -> str:
    """``10.0.0.3 (2 containers), 10.0.0.4 (1 container)`` for the log and docs."""
    return ", ".join(f"{h} ({n} container{'s' if n != 1 else ''})" for h, n in sorted(entry.holding.items()))
