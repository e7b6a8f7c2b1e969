"""The harness itself: etcd runs from the unpacked Debian package, restarts on its ports, TLS demands a
client certificate."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from etcd_server import ETCD_VERSION, EtcdHarnessError, EtcdServer, ensure_etcd_binary


def test_etcd_is_the_debian_build_and_healthy(etcd_server: EtcdServer) -> None:
    version = json.loads(etcd_server.http("GET", "/version"))
    assert version["etcdserver"] == ETCD_VERSION
    assert json.loads(etcd_server.http("GET", "/health"))["health"] == "true"
    assert (etcd_server.data_dir.stat().st_mode & 0o777) == 0o700


def test_prefix_fixture_isolates_and_cleans(etcd_server: EtcdServer, etcd_prefix: bytes) -> None:
    assert etcd_server.count_prefix(etcd_prefix) == 0

    etcd_server.http("POST", "/v3/kv/put", {"key": base64.b64encode(etcd_prefix + b"k").decode(),
                                             "value": base64.b64encode(b"v").decode()})
    assert etcd_server.count_prefix(etcd_prefix) == 1


def test_restart_keeps_ports_and_data(etcd_restartable: EtcdServer, etcd_prefix: bytes) -> None:

    s = etcd_restartable
    port = s.client_port
    s.http("POST", "/v3/kv/put", {"key": base64.b64encode(etcd_prefix + b"k").decode(),
                                   "value": base64.b64encode(b"v").decode()})
    s.stop()
    assert not s.running
    with pytest.raises(OSError):
        s.http("GET", "/health")
    s.start()
    assert s.client_port == port
    assert s.count_prefix(etcd_prefix) == 1


def test_tls_etcd_refuses_a_client_without_certificate(etcd_tls: EtcdServer) -> None:
    assert etcd_tls.tls is not None
    assert json.loads(etcd_tls.http("GET", "/health"))["health"] == "true"  # with the client cert
    ctx = ssl.create_default_context(cafile=str(etcd_tls.tls.ca))
    url = f"https://127.0.0.1:{etcd_tls.client_port}/health"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)), \
            urllib.request.urlopen(url, timeout=2, context=ctx) as r:
        r.read()


def test_etcd_env_variables_do_not_reach_etcd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """etcd reads every ETCD_* variable as a flag: a bad one in the caller's environment is stripped."""
    monkeypatch.setenv("ETCD_QUOTA_BACKEND_BYTES", "not-a-number")
    monkeypatch.setenv("ETCD_NAME", "clash")
    s = EtcdServer(ensure_etcd_binary(), tmp_path / "e", "envtest")
    try:
        s.start()
        assert json.loads(s.http("GET", "/health"))["health"] == "true"
    finally:
        s.stop()


def test_another_etcd_on_our_port_is_never_taken_for_ours(etcd_server: EtcdServer, tmp_path: Path) -> None:
    """Two runs (or workers) may race for a port: the loser's etcd exits, and the winner's answers
    /health on it. The loser must fail to start, not go on against someone else's etcd."""
    loser = EtcdServer(ensure_etcd_binary(), tmp_path / "e", "loser")
    loser.client_port, loser.peer_port = etcd_server.client_port, etcd_server.peer_port  # a restart there
    try:
        with pytest.raises(EtcdHarnessError, match=r"etcd exited|answers as etcd"):
            loser.start()
        assert not loser.running
    finally:
        loser.stop()
    assert json.loads(etcd_server.http("GET", "/health"))["health"] == "true"


def test_test_etcds_listen_below_the_ephemeral_ports(etcd_server: EtcdServer) -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert etcd_server.client_port < low and etcd_server.peer_port < low
