"""Fixtures for the tests against a real etcd: one plain and one TLS etcd per pytest-xdist worker
(session scope, started on first use), and a per-test key prefix deleted after the test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_server import EtcdServer, TlsMaterial, ensure_etcd_binary


def _worker(request: pytest.FixtureRequest) -> str:
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))


@pytest.fixture(scope="session")
def etcd_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """This worker's plain-text etcd. Tests that stop it must leave it running (use `etcd_restartable`)."""
    server = EtcdServer(ensure_etcd_binary(), tmp_path_factory.mktemp("etcd"), f"t-{_worker(request)}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def etcd_tls(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """This worker's etcd with --client-cert-auth and a throwaway CA (see `.tls`)."""
    base = tmp_path_factory.mktemp("etcd-tls")
    tls = TlsMaterial.create(base / "pki")
    server = EtcdServer(ensure_etcd_binary(), base / "etcd", f"tls-{_worker(request)}", tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_restartable(etcd_server: EtcdServer) -> Iterator[EtcdServer]:
    """The worker's etcd, for a test that stops it: running again afterwards, even if the test fails."""
    yield etcd_server
    etcd_server.resume()
    etcd_server.start()


def _prefix(request: pytest.FixtureRequest) -> bytes:
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    return f"/pynetdrv-test/{_worker(request)}/{digest}/".encode()


@pytest.fixture
def etcd_prefix(request: pytest.FixtureRequest, etcd_server: EtcdServer) -> Iterator[bytes]:
    """A key prefix of this test's own in the worker's etcd, emptied before and after the test."""
    prefix = _prefix(request)
    etcd_server.delete_prefix(prefix)
    yield prefix
    etcd_server.start()  # a test that stopped etcd and failed before restarting it
    etcd_server.delete_prefix(prefix)


@pytest.fixture
def etcd_tls_prefix(request: pytest.FixtureRequest, etcd_tls: EtcdServer) -> Iterator[bytes]:
    prefix = _prefix(request)
    etcd_tls.delete_prefix(prefix)
    yield prefix
    etcd_tls.delete_prefix(prefix)


@pytest.fixture
def tmp_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A private etcd for one test (for what must not disturb the worker's etcd)."""
    server = EtcdServer(ensure_etcd_binary(), tmp_path / "etcd", "private")
    server.start()
    try:
        yield server
    finally:
        server.stop()
