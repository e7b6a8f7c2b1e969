"""Which pynetdrv ``status`` and ``check`` look at (pynetdrv.daemon_target):
the paths given, the legacy daemon if its socket is there, else the managed
plugin dockerd recorded under --docker-data-root; several are refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_plugin_paths import record

from pynetdrv.config import Config
from pynetdrv.daemon_target import Target, locate
from pynetdrv.store.open import open_store

RUNTIME = Path("/run/docker/plugins")


def install(data_root: Path, rec: dict[str, Any], wrapped: bool = True) -> None:
    """As Docker 20.10 (and moby's plugin/v2 since) writes it: wrapped."""
    body = {"plugin": rec, "Config": "sha256:" + "0" * 64, "Blobsums": [], "Rootfs": ""} if wrapped else rec
    where = data_root / "plugins" / rec["Id"]
    where.mkdir(parents=True)
    (where / "config.json").write_text(json.dumps(body))


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """Where the legacy socket would be; absent unless a test creates it."""
    return tmp_path / "run" / "pynetdrv.sock"


def find(tmp_path: Path, legacy: Path, **kw: Any) -> Target:
    return locate(kw.pop("socket", None), kw.pop("state", None), tmp_path / "docker", legacy_socket=legacy,
                  legacy_state=tmp_path / "legacy.db", runtime=RUNTIME, **kw)


def test_the_managed_plugin_is_found_when_the_legacy_socket_is_absent(tmp_path: Path, legacy: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "pynetdrv/pynetdrv:latest", state_source="/srv/pn"))
    target = find(tmp_path, legacy)
    assert target == Target(RUNTIME / ("a" * 64) / "pynetdrv-plugin.sock", Path("/srv/pn/state.db"),
                            ("pynetdrv/pynetdrv:latest",), "managed plugin pynetdrv/pynetdrv:latest (enabled)")
    assert Config(socket=target.socket).instance == "pynetdrv-plugin", "the instance the plugin serves as"


def test_the_legacy_daemon_wins_while_its_socket_is_there(tmp_path: Path, legacy: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "pynetdrv/pynetdrv:latest"))
    legacy.parent.mkdir()
    legacy.touch()
    assert find(tmp_path, legacy) == Target(legacy, tmp_path / "legacy.db")
    # ...unless the plugin is asked for by name.
    assert find(tmp_path, legacy, plugin="pynetdrv/pynetdrv:latest").driver_names == ("pynetdrv/pynetdrv:latest",)


def test_given_paths_are_taken_as_they_are(tmp_path: Path, legacy: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "pynetdrv/pynetdrv:latest"))
    assert find(tmp_path, legacy, state=tmp_path / "x.db") == Target(legacy, tmp_path / "x.db")
    assert find(tmp_path, legacy, socket=tmp_path / "y.sock") == Target(tmp_path / "y.sock", tmp_path / "legacy.db")


def test_nothing_installed_means_the_legacy_defaults(tmp_path: Path, legacy: Path) -> None:
    assert find(tmp_path, legacy) == Target(legacy, tmp_path / "legacy.db")


def test_several_plugins_are_refused_naming_them_and_the_flag(tmp_path: Path, legacy: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "pynetdrv/pynetdrv:latest"))
    install(tmp_path / "docker", record("b" * 64, "me/pynetdrv:dev"), wrapped=False)
    with pytest.raises(ValueError, match=r"several pynetdrv managed plugins in .*: me/pynetdrv:dev \(enabled\), "
                                         r"pynetdrv/pynetdrv:latest \(enabled\); choose one with --plugin NAME:TAG"):
        find(tmp_path, legacy)
    assert find(tmp_path, legacy, plugin="me/pynetdrv:dev").socket == RUNTIME / ("b" * 64) / "pynetdrv-plugin.sock"
    with pytest.raises(ValueError, match=r"no pynetdrv managed plugin x/y:z in .* \(installed: me/pynetdrv:dev, "):
        find(tmp_path, legacy, plugin="x/y:z")


def test_the_enabled_one_is_chosen_over_disabled_ones(tmp_path: Path, legacy: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "pynetdrv/pynetdrv:old", enabled=False))
    install(tmp_path / "docker", record("b" * 64, "pynetdrv/pynetdrv:latest"))
    assert find(tmp_path, legacy).driver_names == ("pynetdrv/pynetdrv:latest",)


def test_a_plugin_whose_state_is_in_no_mount_is_refused(tmp_path: Path, legacy: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "p/p:latest", env=["PYNETDRV_STORE=sqlite:/tmp/s.db"]))
    with pytest.raises(ValueError, match=r"keeps its state file inside its rootfs .*give --state"):
        find(tmp_path, legacy)


# --- the command line ----------------------------------------------------------------


def pynetdrv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pynetdrv", *args], capture_output=True, text=True, timeout=60,
                          check=False)


async def empty_state(path: Path) -> None:
    store = await open_store(Config(state=path))
    await store.close()


def test_status_reads_the_named_plugins_state(tmp_path: Path) -> None:
    install(tmp_path / "docker", record("a" * 64, "pynetdrv/pynetdrv:latest", state_source=str(tmp_path / "pn")))
    (tmp_path / "pn").mkdir()
    asyncio.run(empty_state(tmp_path / "pn" / "state.db"))
    done = pynetdrv("status", "--no-docker", "--docker-data-root", str(tmp_path / "docker"),
                    "--plugin", "pynetdrv/pynetdrv:latest")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("NETWORK"), done.stdout
    assert done.stderr == (f"pynetdrv: status of managed plugin pynetdrv/pynetdrv:latest (enabled): socket "
                           f"{RUNTIME / ('a' * 64) / 'pynetdrv-plugin.sock'}, state {tmp_path / 'pn' / 'state.db'}\n")


@pytest.mark.parametrize(("command", "status"), [("status", 1), ("check", 2)])
def test_an_unknown_plugin_is_one_line(tmp_path: Path, command: str, status: int) -> None:
    rec = record("a" * 64, "pynetdrv/pynetdrv:latest")
    install(tmp_path / "docker", rec)
    done = pynetdrv(command, "--no-docker", "--docker-data-root", str(tmp_path / "docker"), "--plugin", "no/such:1")
    assert done.returncode == status and done.stdout == ""
    assert done.stderr == (f"pynetdrv: no pynetdrv managed plugin no/such:1 in {tmp_path / 'docker' / 'plugins'} "
                           "(installed: pynetdrv/pynetdrv:latest)\n")
