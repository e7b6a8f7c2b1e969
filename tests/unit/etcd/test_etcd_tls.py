"""TLS with client certificates against an etcd started with --client-cert-auth."""

from __future__ import annotations

import time

import pytest
from etcd_server import EtcdServer, TlsMaterial

from pynetdrv.cluster.errors import EtcdUnavailable
from pynetdrv.cluster.etcd import EtcdClient


async def test_client_certificate_is_accepted(etcd_tls: EtcdServer, etcd_tls_prefix: bytes) -> None:
    t = etcd_tls.tls
    assert t is not None
    async with EtcdClient.from_url(f"etcd://{etcd_tls.endpoint}", cacert=str(t.ca), cert=str(t.client_cert),
                                   key=str(t.client_key), timeout=2) as c:
        assert await c.put_if_absent(etcd_tls_prefix + b"k", b"v") == (True, None)
        kv = await c.get(etcd_tls_prefix + b"k")
        assert kv is not None and kv.value == b"v"
    assert etcd_tls.count_prefix(etcd_tls_prefix) == 1  # really written, seen by the harness


async def test_localhost_name_is_verified_too(etcd_tls: EtcdServer, etcd_tls_prefix: bytes) -> None:
    t = etcd_tls.tls
    assert t is not None
    async with EtcdClient.from_url(f"etcd://localhost:{etcd_tls.client_port}", cacert=str(t.ca),
                                   cert=str(t.client_cert), key=str(t.client_key), timeout=2) as c:
        assert await c.get_prefix(etcd_tls_prefix) is not None


async def test_without_client_certificate_is_refused_clearly(etcd_tls: EtcdServer, etcd_tls_prefix: bytes) -> None:
    t = etcd_tls.tls
    assert t is not None
    async with EtcdClient.from_url(f"etcd://{etcd_tls.endpoint}", cacert=str(t.ca), timeout=2) as c:
        start = time.monotonic()
        with pytest.raises(EtcdUnavailable) as e:
            await c.put(etcd_tls_prefix + b"k", b"v")
        assert time.monotonic() - start < 3.5
    msg = str(e.value)
    assert f"etcd {etcd_tls.endpoint} unavailable: put" in msg
    assert "it may require a client certificate, --etcd-cert/--etcd-key" in msg
    assert etcd_tls.count_prefix(etcd_tls_prefix) == 0


async def test_plain_client_is_refused_by_a_tls_etcd(etcd_tls: EtcdServer) -> None:
    async with EtcdClient.from_url(f"etcd://{etcd_tls.endpoint}", timeout=1) as c:
        with pytest.raises(EtcdUnavailable, match=f"etcd {etcd_tls.endpoint} unavailable: get") as e:
            await c.get(b"/k")
    assert "if etcd uses TLS: give --etcd-cacert" in str(e.value)


async def test_server_from_another_ca_is_refused(
    etcd_tls: EtcdServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    t = etcd_tls.tls
    assert t is not None
    other = TlsMaterial.create(tmp_path_factory.mktemp("other-ca"))
    async with EtcdClient.from_url(f"etcd://{etcd_tls.endpoint}", cacert=str(other.ca), cert=str(t.client_cert),
                                   key=str(t.client_key), timeout=1) as c:
        with pytest.raises(EtcdUnavailable) as e:
            await c.get(b"/k")
    assert "does not verify against --etcd-cacert" in str(e.value)


async def test_client_certificate_from_another_ca_is_refused(etcd_tls: EtcdServer,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    t = etcd_tls.tls
    assert t is not None
    other = TlsMaterial.create(tmp_path_factory.mktemp("other-client"))
    async with EtcdClient.from_url(f"etcd://{etcd_tls.endpoint}", cacert=str(t.ca), cert=str(other.client_cert),
                                   key=str(other.client_key), timeout=1) as c:
        with pytest.raises(EtcdUnavailable) as e:
            await c.get(b"/k")
    assert "refused the client certificate given by --etcd-cert" in str(e.value)
