"""``pynetdrv serve``'s cluster-mode options: how they map onto Config, and the one-line refusals."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pynetdrv.cli import _parser, _serve_config, main
from pynetdrv.config import DEFAULT_SOCKET, Config
from pynetdrv.store.open import open_store


def config(*argv: str) -> Config:
    return _serve_config(_parser().parse_args(["serve", *argv]), DEFAULT_SOCKET)


def test_without_etcd_nothing_changes(tmp_path: Path) -> None:
    c = config("--store", f"sqlite:{tmp_path}/s.db")
    assert (c.etcd, c.state, c.store_url) == (None, tmp_path / "s.db", f"sqlite:{tmp_path}/s.db")


def _mine() -> str:
    """An address of this host: the one a route would use (connect() on UDP sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return str(s.getsockname()[0])


def test_etcd_store_with_an_address_of_this_host(tmp_path: Path) -> None:
    mine = _mine()
    c = config("--store", "etcd://10.9.9.9:2379,10.9.9.10:2379", "--advertise-address", mine,
               "--state", str(tmp_path / "l.db"), "--vxlan-port", "4790")
    assert (c.etcd, c.advertise_address, c.vxlan_port) == ("etcd://10.9.9.9:2379,10.9.9.10:2379", mine, 4790)
    assert c.store_url == f"etcd://10.9.9.9:2379,10.9.9.10:2379 (local records: sqlite:{tmp_path}/l.db)"


@pytest.mark.parametrize(("argv", "message"), [
    (["--store", "etcd://h:2379"], "cluster mode (--store etcd://...) needs --advertise-address IP"),
    (["--store", "etcd://h:2379", "--advertise-address", "nope"], "--advertise-address 'nope' is not an IP address"),
    (["--store", "etcd://h:2379", "--advertise-address", "192.0.2.250"],
     "--advertise-address 192.0.2.250 is not an address of this host"),
    (["--store", "etcd://h:2379", "--advertise-address", "127.0.0.1"], "cannot be a VXLAN endpoint"),
    (["--advertise-address", "10.0.0.1"], "--advertise-address: only for cluster mode"),
])
def test_cluster_options_refused_with_one_line_naming_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as e:
        config(*argv)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_tls_options_are_checked_before_serving(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--etcd-cert is given without --etcd-key"):
        config("--store", "etcd://h:2379", "--advertise-address", _mine(), "--etcd-cert", str(tmp_path / "c.pem"))
    with pytest.raises(ValueError, match=r"c\.pem"):  # names the file it cannot read
        config("--store", "etcd://h:2379", "--advertise-address", _mine(), "--etcd-cacert", str(tmp_path / "c.pem"))


def test_a_bad_etcd_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", "--store", "etcd://host-without-port"])
    assert e.value.code == 2 and "no port (HOST:PORT)" in capsys.readouterr().err


async def test_open_store_in_cluster_mode_needs_no_etcd_yet(tmp_path: Path) -> None:
    store = await open_store(Config(state=tmp_path / "s.db", etcd="etcd://127.0.0.1:1", advertise_address="192.0.2.1"))
    try:
        assert await store.list_networks() == []  # local records answer without etcd
    finally:
        await store.close()


def test_cluster_mode_without_the_etcd_client_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip install .` has no etcd client (it is the `etcd` extra): say so before anything starts."""
    import sys

    monkeypatch.setitem(sys.modules, "aetcd", None)  # what an interpreter without aetcd has
    with pytest.raises(ValueError) as e:
        config("--store", "etcd://h:2379", "--advertise-address", _mine())
    assert str(e.value) == ("--store etcd://h:2379: cluster mode needs aetcd, which is not installed here "
                            "(pip install 'pynetdrv[etcd]')")
