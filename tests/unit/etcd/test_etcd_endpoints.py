"""`etcd://HOST:PORT[,...]` and the TLS options: what is accepted, and errors naming the bad part."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pynetdrv.cluster.endpoints import Endpoint, EtcdTls, parse_etcd_url
from pynetdrv.cluster.errors import EtcdConfigError
from pynetdrv.errors import InvalidParameter


@pytest.mark.parametrize(("url", "expected"), [
    ("etcd://127.0.0.1:2379", [("127.0.0.1", 2379)]),
    ("etcd://127.0.0.1:2379/", [("127.0.0.1", 2379)]),
    ("etcd://etcd-1.lab:2379,10.0.0.2:22379,[fd00::3]:2379",
     [("etcd-1.lab", 2379), ("10.0.0.2", 22379), ("fd00::3", 2379)]),
    ("etcd://localhost:1", [("localhost", 1)]),
    ("etcd://[::1]:65535", [("::1", 65535)]),
])
def test_valid_urls(url: str, expected: list[tuple[str, int]]) -> None:
    assert parse_etcd_url(url) == tuple(Endpoint(h, p) for h, p in expected)


@pytest.mark.parametrize(("url", "names"), [
    ("http://127.0.0.1:2379", "must start with etcd://"),
    ("etcd://", "no endpoint"),
    ("etcd://127.0.0.1", "endpoint '127.0.0.1': no port"),
    ("etcd://:2379", "endpoint ':2379': no host"),
    ("etcd://127.0.0.1:0", "endpoint '127.0.0.1:0': port '0'"),
    ("etcd://127.0.0.1:65536", "port '65536'"),
    ("etcd://127.0.0.1:23x9", "port '23x9'"),
    ("etcd://127.0.0.1:2379,", "empty endpoint"),
    ("etcd://127.0.0.1:2379,,10.0.0.1:2379", "empty endpoint"),
    ("etcd://10.0.0.1:2379,10.0.0.1:2379", "endpoint '10.0.0.1:2379' is given twice"),
    ("etcd://300.1.1.1:2379", "'300.1.1.1' is not an IPv4 address"),
    ("etcd://fd00::1:2379", "must be in brackets"),
    ("etcd://[10.0.0.1]:2379", "'10.0.0.1' is not an IPv6 address"),
    ("etcd://[fd00::1]2379", "[ADDRESS]:PORT"),
    ("etcd://bad_host:2379", "'bad_host' is not a host name"),
    ("etcd://user@h:2379", "found '@'"),
    ("etcd://h:2379/v3", "found '/'"),
    ("etcd://h:2379?x=1", "found '?'"),
])
def test_bad_urls_name_the_bad_part(url: str, names: str) -> None:
    with pytest.raises(EtcdConfigError, match=_re(names)) as e:
        parse_etcd_url(url)
    assert isinstance(e.value, InvalidParameter)
    assert repr(url) in str(e.value) or url.startswith("http")


def _re(s: str) -> str:
    return re.escape(s)


def test_tls_off_when_no_option() -> None:
    assert EtcdTls.from_options(None, None, None) is None


def test_tls_cert_needs_key_and_vice_versa(tmp_path: Path) -> None:
    with pytest.raises(EtcdConfigError, match="--etcd-cert is given without --etcd-key"):
        EtcdTls.from_options(None, tmp_path / "c.pem", None)
    with pytest.raises(EtcdConfigError, match="--etcd-key is given without --etcd-cert"):
        EtcdTls.from_options(None, None, tmp_path / "k.pem")


def test_tls_files_are_checked_up_front_naming_the_option(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")
    with pytest.raises(EtcdConfigError, match=_re(f"--etcd-cacert {tmp_path / 'missing.pem'}: cannot read")):
        EtcdTls.from_options(tmp_path / "missing.pem", None, None)
    with pytest.raises(EtcdConfigError, match=_re(f"--etcd-key {cert}: not a PEM private key")):
        EtcdTls.from_options(None, cert, cert)
    with pytest.raises(EtcdConfigError, match=_re(f"--etcd-cert {key}: not a PEM certificate")):
        EtcdTls.from_options(None, key, key)
    tls = EtcdTls.from_options(str(cert), str(cert), str(key))
    assert tls == EtcdTls(cert, cert, key)


def test_parsing_the_options_does_not_import_grpc() -> None:
    """Single-host `pynetdrv serve` must never pay for grpc; the CLI only needs these modules."""
    code = ("import sys, pynetdrv.cluster, pynetdrv.cluster.endpoints, pynetdrv.cluster.errors, pynetdrv.cluster.kv;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'aetcd', 'google')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
