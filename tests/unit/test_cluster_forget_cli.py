"""``pynetdrv cluster forget-host``'s command line without etcd: one-line refusals (exit 1) for a bad
address, a store that is not etcd, etcd unreachable; the confirmation when ``--yes`` is not given
(its answers over a real etcd: tests/unit/etcd/test_etcd_forget_host.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pynetdrv.cli import _parser, _serve_config, main
from pynetdrv.cluster_cli import _ask
from pynetdrv.config import DEFAULT_SOCKET, Config


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["cluster", "forget-host", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pynetdrv: ") and "\n" not in err, err
    return err


def test_a_bad_address_is_refused_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert "not-an-ip" in _refused(capsys, "not-an-ip", "--store", "etcd://127.0.0.1:2379", "--yes")


def test_a_store_that_is_not_etcd_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "etcd://HOST:PORT" in _refused(capsys, "192.0.2.3", "--store", "sqlite:/tmp/x.db", "--yes")


def test_etcd_unreachable_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _refused(capsys, "192.0.2.3", "--store", f"etcd://127.0.0.1:{port}", "--yes")
    assert f"127.0.0.1:{port}" in err and "unavailable" in err


def test_the_store_option_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["cluster", "forget-host", "192.0.2.3"])
    assert e.value.code == 2 and "--store" in capsys.readouterr().err


def test_without_a_terminal_the_question_is_answered_no(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    class NotATty:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr("sys.stdin", NotATty())
    assert _ask("Forget host 192.0.2.3 for good?") is False
    assert "give --yes" in capsys.readouterr().err


@pytest.mark.parametrize(("answer", "yes"), [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False)])
def test_on_a_terminal_only_y_confirms(monkeypatch: pytest.MonkeyPatch, answer: str, yes: bool) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            return answer

    monkeypatch.setattr("sys.stdin", Tty())
    assert _ask("Forget?") is yes


def test_serve_rejoin_is_cluster_mode_only_and_reaches_config(tmp_path: Path) -> None:
    def config(*argv: str) -> Config:
        return _serve_config(_parser().parse_args(["serve", *argv]), DEFAULT_SOCKET)

    with pytest.raises(ValueError, match="--rejoin: only for cluster mode"):
        config("--rejoin", "--state", str(tmp_path / "s.db"))
    assert config("--state", str(tmp_path / "s.db")).rejoin is False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # an address of this host
        s.connect(("192.0.2.1", 9))
        mine = str(s.getsockname()[0])
    c = config("--store", "etcd://10.9.9.9:2379", "--advertise-address", mine, "--rejoin")
    assert c.rejoin is True
