"""What the etcd client returns and takes, as plain frozen dataclasses (no aetcd/protobuf types leak):
key-values, snapshots with their revision, watch events, and the comparisons and operations of a
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class KV:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Keys read at one `revision` (watch from `revision + 1` to miss nothing after it)."""

    revision: int
    kvs: tuple[KV, ...]

    def as_dict(self) -> dict[bytes, KV]:
        return {kv.key: kv for kv in self.kvs}


@dataclass(frozen=True)
class WatchEvent:
    """`put`/`delete` of one key at `revision`; or `resync`: the watched history was lost (compacted),
    `snapshot` is the prefix read again in full and replaces whatever the consumer knew."""

    kind: Literal["put", "delete", "resync"]
    revision: int
    kv: KV | None = None
    snapshot: Snapshot | None = None


# -- transactions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compare:
    """`target` of `key` compared with `value` by `op`. mod/create revision 0 means "no such key"."""

    key: bytes
    target: Literal["value", "mod", "create", "version"]
    op: Literal["==", "!=", "<", ">"]
    value: bytes | int


def absent(key: bytes) -> Compare:
    return Compare(key, "create", "==", 0)


def mod_revision_is(key: bytes, revision: int) -> Compare:
    return Compare(key, "mod", "==", revision)


def value_is(key: bytes, value: bytes) -> Compare:
    return Compare(key, "value", "==", value)


@dataclass(frozen=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True)
class Delete:
    key: bytes
    prefix: bool = False


@dataclass(frozen=True)
class Get:
    key: bytes


Op = Put | Delete | Get


@dataclass(frozen=True)
class TxnResult:
    """`succeeded`: the comparisons held; `revision`: etcd's revision after the transaction;
    `gets`: for each Get of the branch that ran, in order, the key's value or None."""

    succeeded: bool
    revision: int
    gets: tuple[KV | None, ...] = ()
    deleted: int = 0
