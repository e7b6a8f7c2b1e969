"""Where create once sits in the daemon: in cluster mode only, after ``serving`` (the networks it
creates make Docker call this daemon), off with ``--no-create-once``; ``serve --docker-socket``."""

from __future__ import annotations

from pathlib import Path

from pynetdrv.api.routes import Gate
from pynetdrv.cli import _parser, _serve_config
from pynetdrv.config import DEFAULT_DOCKER_SOCKET, Config
from pynetdrv.daemon.components import daemon_components


def _names(config: Config) -> list[str]:
    return [c.name for c in daemon_components(config, Gate())]


def test_cluster_mode_starts_the_sync_right_after_serving(tmp_path: Path) -> None:
    config = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db", etcd="etcd://127.0.0.1:2379",
                    advertise_address="127.0.0.1", docker_socket=tmp_path / "d.sock")
    names = _names(config)
    assert names[names.index("serving") + 1] == "create-once sync"
    sync = next(c for c in daemon_components(config, Gate()) if c.name == "create-once sync")
    assert sync.detail() == f"Docker at {tmp_path / 'd.sock'}"


def test_no_sync_in_single_host_mode_or_when_turned_off(tmp_path: Path) -> None:
    assert "create-once sync" not in _names(Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db"))
    off = Config(socket=tmp_path / "p.sock", state=tmp_path / "s.db", etcd="etcd://127.0.0.1:2379",
                 advertise_address="127.0.0.1", create_once=False)
    assert "create-once sync" not in _names(off)


def _host_address() -> str:
    """A non-loopback IPv4 address of this host (serve checks that --advertise-address is one)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2)]
    return next(str(a) for a in found if a and not str(a).startswith("127."))


def test_serve_options(tmp_path: Path) -> None:
    base = ["serve", "--store", "etcd://127.0.0.1:2379", "--advertise-address", _host_address()]
    config = _serve_config(_parser().parse_args(base), tmp_path / "p.sock")
    assert config.docker_socket == DEFAULT_DOCKER_SOCKET and config.create_once and config.fast_path
    config = _serve_config(_parser().parse_args([*base, "--docker-socket", str(tmp_path / "d.sock"),
                                                 "--no-create-once", "--no-fast-path"]), tmp_path / "p.sock")
    assert config.docker_socket == tmp_path / "d.sock" and not config.create_once and not config.fast_path
