"""Where a managed (v2) pynetdrv plugin's socket and state file are on the host.

dockerd keeps each plugin's record in ``<data-root>/plugins/<id>/config.json``
(name, enabled, the plugin's config.json, and the settings: env, args, the
mounts' sources) and binds ``/run/docker/plugins/<id>/`` at the plugin's
``/run/docker/plugins``.  From the record we get the socket
(``/run/docker/plugins/<id>/<interface.socket>``) and the state file: the
store path the plugin serves with (its default, ``PYNETDRV_STORE``, or
``--store``/``--state`` in ``args``) mapped through the bind mount that holds
it.  Nothing here calls the Docker API, so it works while dockerd is down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pynetdrv.plugin_layout import PLUGIN_STORE

#: dockerd's plugin records under its default --data-root.
DOCKER_PLUGIN_ROOT = Path("/var/lib/docker/plugins")
#: Hard-wired in dockerd (it ignores --exec-root for plugins).
PLUGIN_RUNTIME = Path("/run/docker/plugins")
ENTRYPOINT_MODULE = "pynetdrv.managed_plugin"


@dataclass(frozen=True)
class ManagedPlugin:
    id: str
    #: The driver name networks use, with its tag: ``pynetdrv/pynetdrv:latest``.
    name: str
    enabled: bool
    socket: Path
    #: The host path of its state file; None if no mount of the plugin holds it
    #: (then the state lives in the rootfs and is lost on upgrade).
    state: Path | None


def managed_plugins(plugin_root: Path = DOCKER_PLUGIN_ROOT, runtime: Path = PLUGIN_RUNTIME) -> list[ManagedPlugin]:
    """Every pynetdrv managed plugin dockerd knows of, sorted by name.  A record
    that cannot be read or is not pynetdrv's is left out; a missing root is
    no plugin at all."""
    found: list[ManagedPlugin] = []
    try:
        records = sorted(plugin_root.glob("*/config.json"))
    except OSError:
        return []
    for record in records:
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        plugin = _from_record(data, runtime)
        if plugin is not None:
            found.append(plugin)
    return sorted(found, key=lambda p: p.name)


def find_managed_plugin(plugin_root: Path = DOCKER_PLUGIN_ROOT, runtime: Path = PLUGIN_RUNTIME,
                        name: str | None = None) -> ManagedPlugin | None:
    """The one pynetdrv managed plugin (the one called ``name`` if given); an
    enabled one is preferred over disabled ones.  None if there is none;
    ValueError naming them if the choice is ambiguous."""
    plugins = managed_plugins(plugin_root, runtime)
    if name is not None:
        plugins = [p for p in plugins if p.name == name]
    enabled = [p for p in plugins if p.enabled]
    choice = enabled or plugins
    if len(choice) > 1:
        names = ", ".join(f"{p.name} ({'enabled' if p.enabled else 'disabled'})" for p in choice)
        raise ValueError(f"several pynetdrv managed plugins: {names}; name one")
    return choice[0] if choice else None


def plugin_object(record: Any) -> dict[str, Any] | None:
    """The plugin (Id, Name, Enabled, Config, Settings) in a record as dockerd
    writes it: moby's plugin/v2.Plugin marshals it under ``"plugin"``, beside
    a top-level ``"Config"`` that is the config blob's digest (a string), as
    Docker 20.10 and 28.5 do (tests/fixtures); a record that is the plugin
    object itself is taken as it is.  None if it is neither."""
    if not isinstance(record, dict):
        return None
    wrapped = record.get("plugin")
    data = wrapped if isinstance(wrapped, dict) else record
    if not isinstance(data.get("Config"), dict):
        return None
    return data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _from_record(record: Any, runtime: Path) -> ManagedPlugin | None:
    data = plugin_object(record)
    if data is None:
        return None
    config = _dict(data.get("Config"))
    settings = _dict(data.get("Settings"))
    entrypoint = config.get("Entrypoint") or []
    if not isinstance(entrypoint, list) or ENTRYPOINT_MODULE not in entrypoint:
        return None
    plugin_id, name = data.get("Id"), data.get("Name")
    sock = _dict(config.get("Interface")).get("Socket")
    if not (isinstance(plugin_id, str) and plugin_id and isinstance(name, str) and isinstance(sock, str) and sock):
        return None
    return ManagedPlugin(
        id=plugin_id, name=name, enabled=bool(data.get("Enabled")),
        socket=runtime / plugin_id / sock,
        state=host_state_path(store_in_plugin(_list(settings.get("Env")), _list(settings.get("Args"))),
                              _list(settings.get("Mounts"))),
    )


def store_in_plugin(env: list[str], args: list[str]) -> PurePosixPath:
    """The state file's path inside the plugin, as the entrypoint passes it to
    serve: the default, then ``PYNETDRV_STORE``, then ``args`` (last wins)."""
    store = PLUGIN_STORE
    for item in env:
        key, _, value = str(item).partition("=")
        if key == "PYNETDRV_STORE" and value.strip():
            store = value.strip()
    path = _path_of_store(store)
    args = [str(a) for a in args]
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag not in ("--store", "--state"):
            continue
        value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
        if value:
            path = _path_of_store(value) if flag == "--store" else PurePosixPath(value)
    return path


def _path_of_store(store: str) -> PurePosixPath:
    _, _, rest = store.partition("sqlite:")
    return PurePosixPath(rest or store)


def host_state_path(inside: PurePosixPath, mounts: list[Any]) -> Path | None:
    """``inside`` (a path in the plugin) on the host, through the deepest bind
    mount whose destination holds it; None if none does."""
    best: tuple[int, Path] | None = None
    for mount in mounts:
        if not isinstance(mount, dict):
            continue
        dest, source = mount.get("Destination"), mount.get("Source")
        if not (isinstance(dest, str) and isinstance(source, str) and source):
            continue
        dest_path = PurePosixPath(dest)
        if inside == dest_path or dest_path in inside.parents:
            depth = len(dest_path.parts)
            if best is None or depth > best[0]:
                best = (depth, Path(source, inside.relative_to(dest_path)))
    return best[1] if best else None
