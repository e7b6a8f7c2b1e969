"""`etcd://HOST:PORT[,HOST:PORT...]` and the `--etcd-cacert/--etcd-cert/--etcd-key` options, checked
up front with errors that name the bad part (no network access here, no grpc import)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from pynetdrv.cluster.errors import EtcdConfigError

SCHEME = "etcd://"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class Endpoint:
    """One etcd client endpoint. `host` is an IP address or a DNS name, without brackets."""

    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"


def parse_etcd_url(url: str) -> tuple[Endpoint, ...]:
    """`etcd://HOST:PORT[,HOST:PORT...]` -> endpoints, in order. HOST: IPv4, [IPv6] or a DNS name."""
    if not url.startswith(SCHEME):
        raise EtcdConfigError(f"etcd store {url!r}: must start with {SCHEME} (etcd://HOST:PORT[,HOST:PORT...])")
    rest = url[len(SCHEME):]
    rest = rest.removesuffix("/")
    for bad in ("/", "?", "#", "@"):
        if bad in rest:
            raise EtcdConfigError(f"etcd store {url!r}: only HOST:PORT[,HOST:PORT...] may follow {SCHEME} "
                                  f"(found {bad!r}; no path, query or user)")
    if not rest:
        raise EtcdConfigError(f"etcd store {url!r}: no endpoint (etcd://HOST:PORT[,HOST:PORT...])")
    endpoints: list[Endpoint] = []
    for part in rest.split(","):
        ep = _parse_endpoint(url, part)
        if ep in endpoints:
            raise EtcdConfigError(f"etcd store {url!r}: endpoint {part!r} is given twice")
        endpoints.append(ep)
    return tuple(endpoints)


def _parse_endpoint(url: str, part: str) -> Endpoint:
    where = f"etcd store {url!r}: endpoint {part!r}"
    if not part:
        raise EtcdConfigError(f"etcd store {url!r}: an empty endpoint (stray comma?)")
    if part.startswith("["):
        host, sep, port_s = part[1:].partition("]:")
        if not sep:
            raise EtcdConfigError(f"{where}: an IPv6 address needs the form [ADDRESS]:PORT")
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise EtcdConfigError(f"{where}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_s = part.rpartition(":")
        if not sep:
            raise EtcdConfigError(f"{where}: no port (HOST:PORT)")
        if not host:
            raise EtcdConfigError(f"{where}: no host (HOST:PORT)")
        if ":" in host:
            raise EtcdConfigError(f"{where}: an IPv6 address must be in brackets, [ADDRESS]:PORT")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise EtcdConfigError(f"{where}: {host!r} is not an IPv4 address") from None
        elif not _HOSTNAME.match(host):
            raise EtcdConfigError(f"{where}: {host!r} is not a host name or IP address")
    if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
        raise EtcdConfigError(f"{where}: port {port_s!r} is not a number in 1-65535")
    return Endpoint(host, int(port_s))


@dataclass(frozen=True)
class EtcdTls:
    """Client TLS: `cacert` verifies etcd (system roots if None); `cert` + `key` are the client certificate."""

    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def from_options(cls, cacert: str | Path | None, cert: str | Path | None,
                     key: str | Path | None) -> EtcdTls | None:
        """None when no option is given (plain text); else checked: cert and key come together."""
        if cacert is None and cert is None and key is None:
            return None
        if (cert is None) != (key is None):
            given, missing = ("--etcd-cert", "--etcd-key") if key is None else ("--etcd-key", "--etcd-cert")
            raise EtcdConfigError(f"{given} is given without {missing}: a client certificate needs both")
        tls = cls(*(Path(p) if p is not None else None for p in (cacert, cert, key)))
        tls.load()  # fail now, naming the file, not at the first call
        return tls

    def load(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(root certificates, private key, certificate chain) as PEM bytes, each read and checked."""
        return (_read_pem("--etcd-cacert", self.cacert, "CERTIFICATE"),
                _read_pem("--etcd-key", self.key, "PRIVATE KEY"),
                _read_pem("--etcd-cert", self.cert, "CERTIFICATE"))


def _read_pem(option: str, path: Path | None, kind: str) -> bytes | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EtcdConfigError(f"{option} {path}: cannot read: {e.strerror}") from None
    if b"-----BEGIN " not in data or kind.encode() not in data:
        raise EtcdConfigError(f"{option} {path}: not a PEM {kind.lower()}")
    return data
