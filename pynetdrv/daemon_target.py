"""Which pynetdrv the read-only commands (``status``, ``check``) look at.

In order: the socket and state file given on the command line; the legacy
daemon, if its socket (/run/docker/plugins/pynetdrv.sock) is there; the
managed (v2) pynetdrv plugin dockerd has installed (plugin_paths reads its
record under ``<docker data-root>/plugins``), the enabled one if several and
the one named by ``--plugin`` if given; else the legacy daemon's default
paths (whose absence the command then reports).  Nothing here asks Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pynetdrv.config import DEFAULT_SOCKET, DEFAULT_STATE
from pynetdrv.plugin_paths import PLUGIN_RUNTIME, ManagedPlugin, managed_plugins

DEFAULT_DOCKER_DATA_ROOT = Path("/var/lib/docker")


@dataclass(frozen=True)
class Target:
    socket: Path
    state: Path
    #: Other names Docker's networks use for it: a managed plugin's NAME:TAG.
    driver_names: tuple[str, ...] = ()
    #: What was found, for people ("" for the paths given or the defaults).
    found: str = ""


def locate(socket: Path | None, state: Path | None, data_root: Path = DEFAULT_DOCKER_DATA_ROOT,
           plugin: str | None = None, legacy_socket: Path = DEFAULT_SOCKET, legacy_state: Path = DEFAULT_STATE,
           runtime: Path = PLUGIN_RUNTIME) -> Target:
    """ValueError names the problem: ``plugin`` is not installed, several
    plugins could be meant, or the plugin's state is in no host mount."""
    if socket is not None or state is not None:
        return Target(socket or legacy_socket, state or legacy_state)
    if plugin is None and legacy_socket.exists():
        return Target(legacy_socket, legacy_state)
    root = data_root / "plugins"
    plugins = managed_plugins(root, runtime)
    if plugin is not None:
        named = [p for p in plugins if p.name == plugin]
        if not named:
            have = ", ".join(p.name for p in plugins) or "none"
            raise ValueError(f"no pynetdrv managed plugin {plugin} in {root} (installed: {have})")
        plugins = named
    if not plugins:
        return Target(legacy_socket, legacy_state)
    chosen = _one(plugins, root)
    if chosen.state is None:
        raise ValueError(f"managed plugin {chosen.name} keeps its state file inside its rootfs (no mount of "
                         f"the plugin holds it); give --state")
    return Target(chosen.socket, chosen.state, (chosen.name,),
                  found=f"managed plugin {chosen.name} ({'enabled' if chosen.enabled else 'disabled'})")


def _one(plugins: list[ManagedPlugin], root: Path) -> ManagedPlugin:
    """The enabled one, or the only one; ValueError naming them otherwise."""
    choice = [p for p in plugins if p.enabled] or plugins
    if len(choice) > 1:
        names = ", ".join(f"{p.name} ({'enabled' if p.enabled else 'disabled'})" for p in choice)
        raise ValueError(f"several pynetdrv managed plugins in {root}: {names}; choose one with --plugin NAME:TAG "
                         "(or give --socket and --state)")
    return choice[0]
