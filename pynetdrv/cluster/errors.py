"""The errors of the etcd layer, in pynetdrv's hierarchy (so the API turns them into `{"Err": ...}`)."""

from __future__ import annotations

from collections.abc import Sequence

from pynetdrv.errors import InvalidParameter, PynetdrvError


class EtcdConfigError(InvalidParameter):
    """`--store etcd://...` or an `--etcd-*` TLS option is wrong; the message names the bad part."""


class EtcdError(PynetdrvError):
    """etcd answered, but with an error (names the endpoints and the operation)."""

    def __init__(self, endpoints: Sequence[str], what: str, detail: str) -> None:
        self.endpoints = tuple(endpoints)
        self.what = what
        self.detail = detail
        super().__init__(f"etcd {','.join(self.endpoints)}: {what} failed: {detail}")


class EtcdUnavailable(EtcdError):
    """etcd could not be reached (down, hung, refused the TLS handshake) within the time bound."""

    def __init__(self, endpoints: Sequence[str], what: str, detail: str) -> None:
        super().__init__(endpoints, what, detail)
        self.args = (f"etcd {','.join(self.endpoints)} unavailable: {what} failed: {detail}",)

    def __str__(self) -> str:
        return str(self.args[0])


class EtcdLeaseLost(EtcdError):
    """A write named a lease that etcd no longer has (it expired): grant a new one and write again."""


class HostForgotten(PynetdrvError):
    """This host was declared gone for good (``pynetdrv cluster forget-host``) and still holds cluster
    records that may name addresses now given to others: it must not join (the message says the way out)."""
