"""Daemon configuration: a frozen value built by the CLI, read by the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import netaddr

DEFAULT_SOCKET = Path("/run/docker/plugins/pynetdrv.sock")
DEFAULT_STATE = Path("/var/lib/pynetdrv/state.db")
#: Docker Engine API socket, read only by ``pynetdrv check`` (check.docker_view
#: has the same default).  Here so that the command line need not import the
#: check package, and aiohttp's client with it, on the way to ``serve``.
DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")

#: Automatic pools (no --subnet) are carved from these, in order, skipping any
#: subnet that overlaps a pynetdrv pool or a route of the host.  Same syntax as
#: dockerd's --default-address-pool.
DEFAULT_POOLS_V4 = ("base=10.200.0.0/13,size=24",)
DEFAULT_POOLS_V6 = ("base=fd70:6e64::/32,size=64",)


@dataclass(frozen=True)
class DefaultPool:
    base: netaddr.IPNetwork
    size: int

    @classmethod
    def parse(cls, text: str) -> DefaultPool:
        """``base=10.200.0.0/13,size=24`` -> DefaultPool; ValueError names the problem."""
        parts = [part.split("=", 1) for part in text.split(",")]
        fields = dict(p for p in parts if len(p) == 2)
        if len(parts) != 2 or set(fields) != {"base", "size"}:
            raise ValueError(f"default pool {text!r}: expected base=CIDR,size=PREFIXLEN")
        try:
            base = netaddr.IPNetwork(fields["base"])
            size = int(fields["size"])
        except (netaddr.AddrFormatError, ValueError):
            raise ValueError(f"default pool {text!r}: invalid base or size") from None
        if base.ip != base.network or not base.prefixlen <= size <= (32 if base.version == 4 else 128):
            raise ValueError(
                f"default pool {text!r}: size must lie between the base prefix /{base.prefixlen} and the address length"
            )
        return cls(base, size)


def parse_store(text: str, etcd: bool = False) -> Path | str:
    """``--store`` -> the state file path (``sqlite:PATH``) or, with ``etcd``,
    the etcd URL (``etcd://HOST:PORT[,HOST:PORT...]``, checked here);
    ValueError names the problem.

    The per-host state always lives in the SQLite file (``--state``); the
    etcd kind adds a shared store for multi-host networks (docs/multihost.md)."""
    if etcd and text.startswith("etcd://"):
        from pynetdrv.cluster.endpoints import parse_etcd_url
        from pynetdrv.cluster.errors import EtcdConfigError

        try:
            parse_etcd_url(text)
        except EtcdConfigError as e:
            raise ValueError(str(e)) from None
        return text
    kind, sep, rest = text.partition(":")
    known = "sqlite, etcd" if etcd else "sqlite"
    if not sep or not kind:
        raise ValueError(f"store {text!r}: expected KIND:WHERE, such as sqlite:{DEFAULT_STATE}")
    if kind != "sqlite":
        raise ValueError(f"store {text!r}: unknown kind {kind!r} (known: {known})")
    if not rest:
        raise ValueError(f"store {text!r}: sqlite needs a file path, such as sqlite:{DEFAULT_STATE}")
    return Path(rest)


@dataclass(frozen=True)
class Config:
    socket: Path = DEFAULT_SOCKET
    #: The SQLite state file (``--state PATH``, or ``--store sqlite:PATH``).
    state: Path = DEFAULT_STATE
    log_level: str = "info"
    #: How often the firewall is compared with the state and repaired; 0 = never.
    firewall_check_seconds: float = 30.0
    default_pools: tuple[DefaultPool, ...] = field(
        default_factory=lambda: tuple(DefaultPool.parse(p) for p in DEFAULT_POOLS_V4 + DEFAULT_POOLS_V6)
    )
    #: Cluster mode (docs/multihost.md): the shared store, ``etcd://HOST:PORT[,...]``; None: one host.
    etcd: str | None = None
    #: This host's VTEP address on the underlay (required with ``etcd``).
    advertise_address: str | None = None
    etcd_cacert: Path | None = None
    etcd_cert: Path | None = None
    etcd_key: Path | None = None
    vxlan_port: int = 4789
    #: Cluster mode: the local Engine API the create-once sync uses (docs/create-once.md).
    docker_socket: Path = DEFAULT_DOCKER_SOCKET
    create_once: bool = True
    #: Cluster mode: cross-host traffic skips the bridge by tc redirects (dataplane/fastpath.py).
    fast_path: bool = True
    #: Cluster mode: this host was forgotten (``cluster forget-host``): drop its cluster records and join again.
    rejoin: bool = False

    @property
    def store_url(self) -> str:
        """The store as ``--store`` names it."""
        if self.etcd:
            return f"{self.etcd} (local records: sqlite:{self.state})"
        return f"sqlite:{self.state}"

    @property
    def instance(self) -> str:
        """The driver name Docker knows us by: the socket's name without
        ``.sock``.  It also scopes link ownership (see dataplane.base)."""
        return self.socket.stem

    #: Address space names reported to Docker.
    local_address_space: str = "local"
    global_address_space: str = "global"
