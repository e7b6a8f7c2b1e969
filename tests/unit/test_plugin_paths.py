"""pynetdrv.plugin_paths: finding a managed plugin's socket and state file from
dockerd's plugin records (<data-root>/plugins/<id>/config.json), as dockerd
writes them: the plugin's config plus its settings."""

from __future__ import annotations

import copy
import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from pynetdrv.plugin_paths import find_managed_plugin, host_state_path, managed_plugins, store_in_plugin

CONFIG = json.loads((Path(__file__).resolve().parents[2] / "plugin" / "config.json").read_text())
RUNTIME = Path("/run/docker/plugins")


def record(plugin_id: str, name: str, enabled: bool = True, env: list[str] | None = None,
           args: list[str] | None = None, state_source: str = "/var/lib/pynetdrv-plugin") -> dict[str, Any]:
    """A plugin record as dockerd stores it: Config is plugin/config.json (Go field
    names), Settings hold the values in force."""
    mounts = copy.deepcopy(CONFIG["mounts"])
    for m in mounts:
        if m["name"] == "state":
            m["source"] = state_source
    return {
        "Id": plugin_id, "Name": name, "Enabled": enabled,
        "Settings": {
            "Mounts": [{k.capitalize(): v for k, v in m.items()} for m in mounts],
            "Env": env if env is not None else [f"{e['name']}={e['value']}" for e in CONFIG["env"] if e["value"]],
            "Args": args or [], "Devices": [],
        },
        "PluginReference": "", "Config": {
            "Entrypoint": CONFIG["entrypoint"], "Interface": {"Socket": CONFIG["interface"]["socket"],
                                                              "Types": CONFIG["interface"]["types"]},
            "Network": {"Type": "host"}, "Description": CONFIG["description"],
        },
    }


def write(root: Path, rec: dict[str, Any] | str) -> None:
    plugin_id = rec["Id"] if isinstance(rec, dict) else "f" * 64
    (root / plugin_id).mkdir(parents=True)
    (root / plugin_id / "config.json").write_text(rec if isinstance(rec, str) else json.dumps(rec))


def test_the_default_plugin_is_found_with_its_socket_and_state(tmp_path: Path) -> None:
    write(tmp_path, record("a" * 64, "pynetdrv/pynetdrv:latest"))
    [plugin] = managed_plugins(tmp_path, RUNTIME)
    assert plugin.name == "pynetdrv/pynetdrv:latest" and plugin.enabled
    assert plugin.socket == RUNTIME / ("a" * 64) / "pynetdrv-plugin.sock"
    assert plugin.state == Path("/var/lib/pynetdrv-plugin/state.db")


def test_a_moved_state_mount_and_another_store_are_followed(tmp_path: Path) -> None:
    env = ["PYNETDRV_STORE=sqlite:/var/lib/pynetdrv-plugin/sub/other.db", "PYTHONUNBUFFERED=1"]
    write(tmp_path, record("b" * 64, "me/net:dev", env=env, state_source="/srv/pn"))
    assert find_managed_plugin(tmp_path, RUNTIME).state == Path("/srv/pn/sub/other.db")  # type: ignore[union-attr]


def test_args_win_over_env() -> None:
    env = ["PYNETDRV_STORE=sqlite:/var/lib/pynetdrv-plugin/env.db"]
    assert store_in_plugin(env, ["--log-level", "debug", "--store", "sqlite:/var/lib/pynetdrv-plugin/a.db"]) \
        == PurePosixPath("/var/lib/pynetdrv-plugin/a.db")
    assert store_in_plugin(env, ["--state=/var/lib/pynetdrv-plugin/s.db"]) == PurePosixPath(
        "/var/lib/pynetdrv-plugin/s.db"
    )
    assert store_in_plugin(env, ["--store"]) == PurePosixPath("/var/lib/pynetdrv-plugin/env.db")


def test_a_state_outside_every_mount_has_no_host_path(tmp_path: Path) -> None:
    write(tmp_path, record("c" * 64, "p/p:latest", env=["PYNETDRV_STORE=sqlite:/tmp/state.db"]))
    assert find_managed_plugin(tmp_path, RUNTIME).state is None  # type: ignore[union-attr]


def test_the_deepest_mount_holding_the_file_wins() -> None:
    mounts = [{"Destination": "/var", "Source": "/host-var"}, {"Destination": "/var/lib/x", "Source": "/srv/x"},
              {"Destination": "/var/lib/x/other", "Source": "/nope"}, "junk", {"Destination": "/var/lib"}]
    assert host_state_path(PurePosixPath("/var/lib/x/state.db"), mounts) == Path("/srv/x/state.db")


def test_other_plugins_and_broken_records_are_left_out(tmp_path: Path) -> None:
    other = record("d" * 64, "vieux/sshfs:latest")
    other["Config"]["Entrypoint"] = ["/usr/bin/sshfs-plugin"]
    write(tmp_path, other)
    write(tmp_path, "{not json")
    incomplete = record("e" * 64, "p/p:latest")
    del incomplete["Config"]["Interface"]
    write(tmp_path, incomplete)
    assert managed_plugins(tmp_path, RUNTIME) == []
    assert find_managed_plugin(tmp_path, RUNTIME) is None
    assert managed_plugins(tmp_path / "no-such-root", RUNTIME) == []


def test_an_enabled_plugin_is_preferred_and_several_are_ambiguous(tmp_path: Path) -> None:
    write(tmp_path, record("1" * 64, "pynetdrv/pynetdrv:old", enabled=False))
    write(tmp_path, record("2" * 64, "pynetdrv/pynetdrv:latest"))
    assert find_managed_plugin(tmp_path, RUNTIME).name == "pynetdrv/pynetdrv:latest"  # type: ignore[union-attr]
    assert find_managed_plugin(tmp_path, RUNTIME, name="pynetdrv/pynetdrv:old").enabled is False  # type: ignore[union-attr]
    write(tmp_path, record("3" * 64, "me/pynetdrv:dev"))
    with pytest.raises(ValueError, match=r"me/pynetdrv:dev \(enabled\), pynetdrv/pynetdrv:latest \(enabled\)"):
        find_managed_plugin(tmp_path, RUNTIME)
    assert find_managed_plugin(tmp_path, RUNTIME, name="no/such:tag") is None


#: What real engines wrote for `docker plugin create sdact/pynetdrv-probe:v1`
#: of this repository's plugin/config.json: Docker 20.10.24 (Debian bookworm,
#: after scripts/build-plugin) and Docker 28.5.2 (Debian sid, an empty rootfs).
#: Both are moby's plugin/v2.Plugin: the plugin object under "plugin", and
#: "Config" at the top a digest string.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("engine", ["20.10", "28.5"])
def test_a_real_engines_record_is_read(tmp_path: Path, engine: str) -> None:
    data = json.loads((FIXTURES / f"plugin-record-docker-{engine}.json").read_text())
    assert isinstance(data["Config"], str) and "plugin" in data, "the fixture is the wrapped shape"
    assert data["plugin"]["Config"]["DockerVersion"].startswith(engine)
    plugin_id = data["plugin"]["Id"]
    write_id(tmp_path, plugin_id, json.dumps(data))
    [plugin] = managed_plugins(tmp_path, RUNTIME)
    assert plugin.id == plugin_id and plugin.name == "sdact/pynetdrv-probe:v1" and not plugin.enabled
    assert plugin.socket == RUNTIME / plugin_id / "pynetdrv-plugin.sock"
    assert plugin.state == Path("/var/lib/pynetdrv-plugin/state.db")


def test_wrapped_and_flat_records_give_the_same_plugin(tmp_path: Path) -> None:
    """Both shapes, side by side: {"plugin": {...}, "Config": "sha256:..."} and
    the plugin object alone (as the tests above write it)."""
    flat = record("a" * 64, "pynetdrv/pynetdrv:latest", env=["PYNETDRV_STORE=sqlite:/var/lib/pynetdrv-plugin/w.db"])
    wrapped = {"plugin": copy.deepcopy(flat), "Config": "sha256:" + "0" * 64, "Blobsums": [], "Rootfs": ""}
    write_id(tmp_path / "flat", flat["Id"], json.dumps(flat))
    write_id(tmp_path / "wrapped", flat["Id"], json.dumps(wrapped))
    assert managed_plugins(tmp_path / "flat", RUNTIME) == managed_plugins(tmp_path / "wrapped", RUNTIME)
    assert managed_plugins(tmp_path / "wrapped", RUNTIME)[0].state == Path("/var/lib/pynetdrv-plugin/w.db")


ENTRY = ["python3", "-m", "pynetdrv.managed_plugin"]


@pytest.mark.parametrize(("text", "expected"), [
    # The crash: a string where the plugin object was expected.
    (json.dumps({"plugin": "x", "Config": "sha256:00"}), []),
    (json.dumps({"Config": "sha256:00"}), []),
    (json.dumps({"plugin": {"Config": {"Entrypoint": ENTRY, "Interface": "s.sock"}, "Id": "x", "Name": "y"}}), []),
    # Settings of the wrong kinds: found, with no state path.
    (json.dumps({"plugin": {"Config": {"Entrypoint": ENTRY, "Interface": {"Socket": "s.sock"}}, "Id": "x",
                            "Name": "y", "Settings": {"Env": "PYNETDRV_STORE=x", "Mounts": {}, "Args": None}}}),
     [("y", None)]),
    (json.dumps([1, 2]), []),
], ids=["plugin-is-a-string", "digest-only", "interface-is-a-string", "settings-of-wrong-kinds", "a-list"])
def test_odd_records_never_crash(tmp_path: Path, text: str, expected: list[tuple[str, Path | None]]) -> None:
    write_id(tmp_path, "f" * 64, text)
    assert [(p.name, p.state) for p in managed_plugins(tmp_path, RUNTIME)] == expected


def write_id(root: Path, plugin_id: str, text: str) -> None:
    (root / plugin_id).mkdir(parents=True)
    (root / plugin_id / "config.json").write_text(text)
