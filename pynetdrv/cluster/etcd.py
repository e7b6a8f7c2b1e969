"""The etcd client pynetdrv uses: aetcd (asyncio, gRPC) behind a small, typed, bounded interface.

Every call has a deadline (`timeout`, plus a margin enforced here as well); any failure to reach etcd
becomes `EtcdUnavailable` naming the endpoints and the operation, other etcd errors `EtcdError`.
The client is created lazily and recovers by itself when etcd comes back (gRPC reconnects with the
backoff below, and calls wait for the channel within their deadline): no new client is needed. A client belongs to
the event loop it is first used in.

aetcd 1.0 has no TLS: `_Channel` replaces its `connect()` with one that opens a secure channel to
one or several endpoints. That, and the use of its stubs, is why the dependency is pinned below 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

import aetcd  # type: ignore[import-untyped]
import grpc  # type: ignore[import-untyped]
from aetcd import rpc, watcher

from pynetdrv.cluster.endpoints import Endpoint, EtcdTls, parse_etcd_url
from pynetdrv.cluster.errors import EtcdConfigError, EtcdError, EtcdLeaseLost, EtcdUnavailable
from pynetdrv.cluster.kv import (
    KV,
    Compare,
    Delete,
    Get,
    Op,
    Put,
    Snapshot,
    TxnResult,
    WatchEvent,
    absent,
    mod_revision_is,
    value_is,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
# See ../shared/reference/etcd.md: the ping timeout (not keepalive_timeout) fails a hung etcd; the
# keepalive time must stay >= etcd's --grpc-keepalive-min-time (5 s); never permit_without_calls
# (an idle client then gets GOAWAY too_many_pings); a short reconnect backoff to recover fast.
GRPC_OPTIONS: dict[str, Any] = {
    "grpc.keepalive_time_ms": 10_000,
    "grpc.http2.ping_timeout_ms": 3_000,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2_000,
}
_UNAVAILABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_UNAVAILABLE_ERRORS = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.WatchTimeoutError)


RETRY_INTERVAL_S = 0.1


def _not_sent(e: grpc.aio.AioRpcError) -> bool:
    """gRPC failed the call before sending it: no connection to any endpoint."""
    return bool(e.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect to all addresses" in (e.details() or ""))


class WatchCompacted(Exception):
    """The revision a watch asked for is compacted away (internal to the watch loop)."""


async def _target(endpoints: Sequence[Endpoint]) -> str:
    """A gRPC target: `host:port` for one endpoint; for several, an `ipv4:`/`ipv6:` address list
    (host names resolved once, here), which gRPC's pick_first tries in order."""
    if len(endpoints) == 1:
        return str(endpoints[0])
    addrs: dict[tuple[str, int], None] = {}  # ordered, without duplicates
    loop = asyncio.get_running_loop()
    for ep in endpoints:
        if ep.is_ip:
            addrs[(ep.host, ep.port)] = None
            continue
        try:
            infos = await loop.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise EtcdUnavailable([str(x) for x in endpoints], f"resolving {ep.host}", str(e)) from None
        for info in infos:
            addrs[(str(info[4][0]), ep.port)] = None
    # One gRPC target holds one address family: IPv4 if there is any, else IPv6.
    v4 = [(a, p) for a, p in addrs if ipaddress.ip_address(a).version == 4]
    if v4:
        return "ipv4:" + ",".join(f"{a}:{p}" for a, p in v4)
    return "ipv6:" + ",".join(f"[{a}]:{p}" for a, p in addrs)


class _Channel(aetcd.Client):  # type: ignore[misc]
    """aetcd's client with our channel: TLS credentials and a multi-endpoint target."""

    def __init__(self, endpoints: Sequence[Endpoint], tls: EtcdTls | None, timeout: float) -> None:
        super().__init__(timeout=timeout, options=dict(GRPC_OPTIONS))
        self._endpoints = tuple(endpoints)
        self._tls = tls

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        target = await _target(self._endpoints)
        if self._connected.is_set():  # another task connected while we resolved
            return
        options = dict(self._options)
        if len(self._endpoints) > 1:
            options["grpc.default_authority"] = str(self._endpoints[0])  # TLS checks this name
        if self._tls is None:
            channel = grpc.aio.insecure_channel(target, options=list(options.items()))
        else:
            root, key, chain = self._tls.load()
            creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
            channel = grpc.aio.secure_channel(target, creds, options=list(options.items()))
        self.channel = channel
        self.kvstub = rpc.KVStub(channel)
        self.clusterstub = rpc.ClusterStub(channel)
        self.leasestub = rpc.LeaseStub(channel)
        self.maintenancestub = rpc.MaintenanceStub(channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(channel), timeout=self._timeout, metadata=self.metadata)
        self._connected.set()


def _kv(m: Any) -> KV:
    return KV(bytes(m.key), bytes(m.value), int(m.create_revision), int(m.mod_revision), int(m.version),
              int(m.lease))


def _prefix_end(prefix: bytes) -> bytes:
    """The end of the key range of `prefix` (etcd's convention; b'\\0' = to the end of the keyspace)."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


_CMP_TARGET = {"value": rpc.Compare.VALUE, "mod": rpc.Compare.MOD, "create": rpc.Compare.CREATE,
               "version": rpc.Compare.VERSION}
_CMP_OP = {"==": rpc.Compare.EQUAL, "!=": rpc.Compare.NOT_EQUAL, "<": rpc.Compare.LESS, ">": rpc.Compare.GREATER}
_CMP_FIELD = {"value": "value", "mod": "mod_revision", "create": "create_revision", "version": "version"}


def _compare_msg(c: Compare) -> Any:
    m = rpc.Compare(key=c.key, target=_CMP_TARGET[c.target], result=_CMP_OP[c.op])
    if c.target == "value":
        if not isinstance(c.value, bytes):
            raise TypeError(f"compare on the value of {c.key!r} needs bytes, not {c.value!r}")
        m.value = c.value
    else:
        if not isinstance(c.value, int):
            raise TypeError(f"compare on the {c.target} of {c.key!r} needs an int, not {c.value!r}")
        setattr(m, _CMP_FIELD[c.target], c.value)
    return m


def _op_msg(op: Op) -> Any:
    if isinstance(op, Put):
        return rpc.RequestOp(request_put=rpc.PutRequest(key=op.key, value=op.value, lease=op.lease))
    if isinstance(op, Delete):
        end = _prefix_end(op.key) if op.prefix else b""
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key, range_end=end))
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=op.key))


class EtcdClient:
    """A connection to one etcd cluster: `EtcdClient.from_url("etcd://h:2379", tls=...)`."""

    def __init__(self, endpoints: Sequence[Endpoint], tls: EtcdTls | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not endpoints:
            raise EtcdConfigError("etcd client: no endpoint")
        if timeout <= 0:
            raise EtcdConfigError(f"etcd client: timeout must be > 0 s, not {timeout}")
        self.endpoints = tuple(endpoints)
        self.names = tuple(str(e) for e in self.endpoints)
        self.timeout = timeout
        self.tls = tls
        self._raw = _Channel(self.endpoints, tls, timeout)
        self._opts: dict[str, Any] = {"timeout": timeout}

    @classmethod
    def from_url(cls, url: str, *, cacert: str | None = None, cert: str | None = None, key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> EtcdClient:
        return cls(parse_etcd_url(url), EtcdTls.from_options(cacert, cert, key), timeout)

    async def close(self) -> None:
        """Close the connection, within the client's timeout: aetcd's close first winds down the
        watch stream, whose tasks a hung etcd can hold; shutting down must never wait on etcd."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._raw.close()
        except TimeoutError:
            log.warning("etcd %s: the connection did not close within %g s; dropped it",
                        ",".join(self.names), self.timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- error mapping ---------------------------------------------------------------------------------
    def _tls_hint(self, detail: str) -> str:
        """What a TLS mismatch looks like from here (gRPC's own words are cryptic), as advice."""
        if self.tls is None:
            if "Socket closed" in detail:
                return " (if etcd uses TLS: give --etcd-cacert, and --etcd-cert/--etcd-key for client certificates)"
        elif "CERTIFICATE_VERIFY_FAILED" in detail:
            return " (etcd's certificate does not verify against --etcd-cacert, or does not name this endpoint)"
        elif self.tls.cert is None and any(s in detail for s in ("TSI_", "SSL", "andshake")):
            return " (etcd refused the TLS session: it may require a client certificate, --etcd-cert/--etcd-key)"
        elif any(s in detail for s in ("BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "TSI_DATA_CORRUPTED")):
            return " (etcd refused the client certificate given by --etcd-cert: not signed by a CA it trusts?)"
        return ""

    def _error(self, what: str, e: BaseException) -> EtcdError:
        if isinstance(e, grpc.aio.AioRpcError):
            detail = f"{e.code().name}: {e.details()}"
            if e.code() in _UNAVAILABLE_CODES:
                return EtcdUnavailable(self.names, what, detail + self._tls_hint(detail))
        elif isinstance(e, TimeoutError):
            return EtcdUnavailable(self.names, what, f"no answer within {self.timeout:g} s")
        else:
            cause = e.__cause__ if isinstance(e.__cause__, grpc.aio.AioRpcError) else None
            detail = f"{cause.code().name}: {cause.details()}" if cause else (str(e) or type(e).__name__)
            if isinstance(e, _UNAVAILABLE_ERRORS):
                return EtcdUnavailable(self.names, what, detail + self._tls_hint(detail))
        if "lease not found" in detail:
            return EtcdLeaseLost(self.names, what, detail)
        return EtcdError(self.names, what, detail)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one request within the client's deadline, mapping every failure to an EtcdError.

        A request that gRPC refused to send because the channel is not connected (etcd down, or just
        back while gRPC waits out its reconnect backoff) is tried again until the deadline, then
        the last error is raised: it keeps gRPC's reason (e.g. a TLS refusal). Requests that may
        have reached etcd are never repeated (a put-if-absent must not see its own write)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout(self.timeout + 1.0):  # the net under gRPC's own deadline
                while True:
                    try:
                        await self._raw.connect()
                        return await fn()
                    except grpc.aio.AioRpcError as e:
                        left = deadline - loop.time()
                        if not _not_sent(e) or left < 0.05:
                            raise
                        await asyncio.sleep(min(RETRY_INTERVAL_S, left))
        except (grpc.aio.AioRpcError, aetcd.ClientError, TimeoutError) as e:
            raise self._error(what, e) from e

    # -- reads -----------------------------------------------------------------------------------------
    async def _range(self, what: str, key: bytes, end: bytes) -> Snapshot:
        async def go() -> Snapshot:
            r = await self._raw.kvstub.Range(rpc.RangeRequest(key=key, range_end=end), **self._opts)
            return Snapshot(int(r.header.revision), tuple(_kv(m) for m in r.kvs))
        return await self._call(what, go)

    async def range(self, key: bytes, end: bytes, limit: int) -> list[KV]:
        """At most ``limit`` keys of [key, end), in key order (a bounded page of a large prefix)."""
        async def go() -> list[KV]:
            r = await self._raw.kvstub.Range(rpc.RangeRequest(key=key, range_end=end, limit=limit), **self._opts)
            return [_kv(m) for m in r.kvs]
        return await self._call(f"range {key!r}..{end!r}", go)

    async def get(self, key: bytes) -> KV | None:
        """The key's value and revisions, or None."""
        kvs = (await self._range(f"get {key!r}", key, b"")).kvs
        return kvs[0] if kvs else None

    async def get_prefix(self, prefix: bytes) -> Snapshot:
        """Every key under `prefix`, sorted by key, with the revision they were read at."""
        return await self._range(f"get prefix {prefix!r}", prefix, _prefix_end(prefix))

    # -- writes ----------------------------------------------------------------------------------------
    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Write unconditionally; returns the new revision."""
        async def go() -> int:
            r = await self._raw.kvstub.Put(rpc.PutRequest(key=key, value=value, lease=lease), **self._opts)
            return int(r.header.revision)
        return await self._call(f"put {key!r}", go)

    async def delete(self, key: bytes, prefix: bool = False) -> int:
        """Delete the key (or every key under it); returns how many were deleted (0 is fine)."""
        end = _prefix_end(key) if prefix else b""

        async def go() -> int:
            r = await self._raw.kvstub.DeleteRange(rpc.DeleteRangeRequest(key=key, range_end=end), **self._opts)
            return int(r.deleted)
        return await self._call(f"delete {key!r}", go)

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op] = (),
                  failure: Sequence[Op] = ()) -> TxnResult:
        """One etcd transaction: if every comparison holds, `success` runs, else `failure`."""
        req = rpc.TxnRequest(compare=[_compare_msg(c) for c in compare], success=[_op_msg(o) for o in success],
                             failure=[_op_msg(o) for o in failure])
        keys = ", ".join(repr(k) for k in dict.fromkeys([c.key for c in compare] + [o.key for o in success])) or "-"

        async def go() -> TxnResult:
            r = await self._raw.kvstub.Txn(req, **self._opts)
            gets: list[KV | None] = []
            deleted = 0
            for resp in r.responses:
                which = resp.WhichOneof("response")
                if which == "response_range":
                    kvs = resp.response_range.kvs
                    gets.append(_kv(kvs[0]) if kvs else None)
                elif which == "response_delete_range":
                    deleted += int(resp.response_delete_range.deleted)
            return TxnResult(bool(r.succeeded), int(r.header.revision), tuple(gets), deleted)
        return await self._call(f"transaction on {keys}", go)

    async def put_if_absent(self, key: bytes, value: bytes, lease: int = 0) -> tuple[bool, KV | None]:
        """Create the key; (True, None) if created, else (False, the value that is there)."""
        r = await self.txn([absent(key)], [Put(key, value, lease)], [Get(key)])
        return (True, None) if r.succeeded else (False, r.gets[0])

    async def compare_and_swap(self, key: bytes, value: bytes, mod_revision: int,
                               lease: int = 0) -> tuple[bool, KV | None]:
        """Write only if the key is still at `mod_revision` (0: only if absent).
        (True, None) if written, else (False, the current value or None if the key is gone)."""
        r = await self.txn([mod_revision_is(key, mod_revision)], [Put(key, value, lease)], [Get(key)])
        return (True, None) if r.succeeded else (False, r.gets[0])

    async def delete_if_value(self, key: bytes, expected: bytes) -> bool:
        """Delete the key only if it still holds `expected` (e.g. our own registration)."""
        r = await self.txn([value_is(key, expected)], [Delete(key)])
        return r.succeeded and r.deleted > 0

    # -- leases ----------------------------------------------------------------------------------------
    async def grant_lease(self, ttl: int) -> int:
        if ttl < 1:
            raise EtcdConfigError(f"lease ttl must be >= 1 s, not {ttl}")

        async def go() -> int:
            r = await self._raw.leasestub.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl, ID=0), **self._opts)
            return int(r.ID)
        return await self._call(f"grant a {ttl} s lease", go)

    async def refresh_lease(self, lease: int) -> int:
        """Keep the lease alive once; returns its remaining TTL, <= 0 if etcd no longer has it."""
        async def go() -> int:
            async for reply in self._raw.leasestub.LeaseKeepAlive([rpc.LeaseKeepAliveRequest(ID=lease)],
                                                                  **self._opts):
                return int(reply.TTL)
            return 0
        return await self._call(f"refresh lease {lease:x}", go)

    async def revoke_lease(self, lease: int) -> None:
        """Revoke the lease (its keys go); a lease that is already gone is fine."""
        with contextlib.suppress(EtcdLeaseLost):
            await self._call(f"revoke lease {lease:x}",
                             lambda: self._raw.leasestub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease), **self._opts))

    # -- watch -----------------------------------------------------------------------------------------
    async def watch_once(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchEvent]:
        """One watch stream of the prefix from `start_revision`, ending with an error when the
        stream breaks (EtcdUnavailable) or the revision is compacted (WatchCompacted). The
        surviving watch is `pynetdrv.cluster.watch.watch_prefix`."""
        what = f"watch {prefix!r} from revision {start_revision}"
        try:
            w = await self._call(what, lambda: self._raw.watch_prefix(prefix, start_revision=start_revision))
        except EtcdError as e:
            if isinstance(e.__cause__, aetcd.RevisionCompactedError):
                raise WatchCompacted(str(e.__cause__)) from None
            raise
        try:
            async for ev in w:
                kv = KV(bytes(ev.kv.key), bytes(ev.kv.value), int(ev.kv.create_revision), int(ev.kv.mod_revision),
                        int(ev.kv.version), int(ev.kv.lease))
                yield WatchEvent("put" if ev.kind == "PUT" else "delete", kv.mod_revision, kv)
        except aetcd.RevisionCompactedError as e:
            raise WatchCompacted(str(e)) from None
        except (grpc.aio.AioRpcError, aetcd.ClientError) as e:
            raise self._error(what, e) from e
        finally:
            with contextlib.suppress(grpc.aio.AioRpcError, aetcd.ClientError, TimeoutError):
                await asyncio.wait_for(w.cancel(), self.timeout)
