"""contrib/systemd: the socket and service units as shipped, checked by
systemd's own parser (`systemd-analyze verify`, Debian package systemd; no
systemd needs to run) and for the settings the boot order rests on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
SHIPPED_EXEC = "/usr/local/bin/pynetdrv"


def verify(tmp_path: Path, socket_text: str, service_text: str) -> subprocess.CompletedProcess[str]:
    """verify checks that ExecStart's program exists: point it at this venv's
    pynetdrv (everything else as given)."""
    venv_exec = str(Path(sys.executable).parent / "pynetdrv")
    (tmp_path / "pynetdrv.socket").write_text(socket_text)
    (tmp_path / "pynetdrv.service").write_text(service_text.replace(f"ExecStart={SHIPPED_EXEC}",
                                                                    f"ExecStart={venv_exec}"))
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    return subprocess.run([analyze, "verify", str(tmp_path / "pynetdrv.socket"), str(tmp_path / "pynetdrv.service")],
                          capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def test_systemd_accepts_both_units_without_a_warning(tmp_path: Path) -> None:
    done = verify(tmp_path, (UNITS / "pynetdrv.socket").read_text(), (UNITS / "pynetdrv.service").read_text())
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_verify_does_fail_on_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt Listen setting is refused."""
    socket_text = (UNITS / "pynetdrv.socket").read_text().replace("ListenStream=", "ListenStrem=")
    done = verify(tmp_path, socket_text, (UNITS / "pynetdrv.service").read_text())
    assert done.returncode != 0 and "Unknown key 'ListenStrem'" in done.stderr, done.stderr


def test_the_socket_is_docker_s_plugin_socket_and_opens_before_docker() -> None:
    sock = unit("pynetdrv.socket")
    assert sock["Socket"]["ListenStream"] == "/run/docker/plugins/pynetdrv.sock"
    assert sock["Socket"]["SocketMode"] == "0660"
    assert "docker.service" in sock["Unit"]["Before"].split()
    assert sock["Install"]["WantedBy"] == "sockets.target"


def test_the_service_takes_the_socket_and_notifies_readiness() -> None:
    svc = unit("pynetdrv.service")
    assert "pynetdrv.socket" in svc["Unit"]["Requires"].split()
    assert "pynetdrv.socket" in svc["Unit"]["After"].split()
    assert "docker.service" in svc["Unit"]["Before"].split()
    assert svc["Service"]["Type"] == "notify"
    # No --socket: a path other than the passed socket's is refused by serve.
    assert svc["Service"]["ExecStart"] == f"{SHIPPED_EXEC} serve"
    assert svc["Install"]["Also"] == "pynetdrv.socket"
    assert "multi-user.target" in svc["Install"]["WantedBy"].split()
