"""pynetdrv as a managed (v2) plugin in the engine under test: building its directory once,
and a ManagedPlugin handle for create/set/enable/disable/upgrade/rm, the plugin's socket and
process.

The plugin directory (config.json + rootfs) is made by `scripts/build-plugin --dir-only` and
kept under the build cache, named by a hash of everything that goes into it (the package, the
manifest, the build script); a second engine, or a second run on unchanged sources, creates
the plugin from that copy without building again.

Every `docker plugin ...` call and its output is appended to the transcript
(MPLUGIN_TRANSCRIPT, default /var/log/pynetdrv-test-mplugin.log), which the closing note of
the managed-plugin work quotes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from integration.cmd import Out, run, wait_for
from integration.constants import DOCKER
from integration.docker_objects import cleanup_docker_objects
from integration.pynetdrv_daemon import plugin_activates

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PYNETDRV_PLUGIN_CACHE", "/var/cache/pynetdrv-plugin"))
BUILDS = CACHE / "it"
# Not the documented pynetdrv/pynetdrv:latest: a developer's own install of that on this
# host must survive the tests. The same manifest, hence the same instance (below).
NAME = "pynetdrv/pynetdrv-it:latest"
# The instance named by the manifest's socket (pynetdrv-plugin.sock): it prefixes the link
# aliases and the iptables chains of the managed plugin.
INSTANCE = "pynetdrv-plugin"
SOCKET_NAME = f"{INSTANCE}.sock"
PLUGINS_RUN = Path("/run/docker/plugins")
TRANSCRIPT = Path(os.environ.get("MPLUGIN_TRANSCRIPT", "/var/log/pynetdrv-test-mplugin.log"))


def note(text: str) -> None:
    with open(TRANSCRIPT, "a") as f:
        f.write(text.rstrip() + "\n")


def docker_logged(*args: str, check: bool = True, timeout: float = 120) -> Out:
    """`docker ARGS`, with the command and what it printed appended to the transcript."""
    out = run([DOCKER, *args], check=False, timeout=timeout)
    note(f"$ docker {' '.join(args)}\n{out.output}\n(exit {out.rc})")
    if check and not out.ok:
        raise AssertionError(f"docker {' '.join(args)} failed (exit {out.rc}):\n{out.output}")
    return out


def sources_hash() -> str:
    """A hash of what goes into the plugin directory: the package's files, the manifest,
    pyproject.toml and the build script itself."""
    h = hashlib.sha256()
    files = sorted(p for p in (REPO / "pynetdrv").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    files += [REPO / "pyproject.toml", REPO / "plugin" / "config.json", REPO / "scripts" / "build-plugin"]
    for path in files:
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def plugin_dir() -> Path:
    """The plugin directory for the current sources, built on first use and then reused."""
    target = BUILDS / sources_hash()
    if (target / "config.json").is_file() and (target / "rootfs").is_dir():
        return target
    t0 = time.monotonic()
    out = run([str(REPO / "scripts" / "build-plugin"), "--name", NAME, "--dir-only"], timeout=900)
    built = Path(out.splitlines()[-1].strip())
    BUILDS.mkdir(parents=True, exist_ok=True)
    for old in BUILDS.iterdir():  # one build kept: each is ~220 MB
        shutil.rmtree(old, ignore_errors=True)
    built.rename(target)
    note(f"# built {target} in {time.monotonic() - t0:.1f} s\n{out}")
    return target


class ManagedPlugin:
    """The plugin NAME in the engine under test."""

    def __init__(self, name: str = NAME) -> None:
        self.name = name
        self.enable_seconds: float | None = None  # of the first enable (installed())

    def inspect(self) -> dict[str, Any] | None:
        out = run([DOCKER, "plugin", "inspect", self.name], check=False)
        if not out.ok:
            return None
        info: dict[str, Any] = json.loads(out)[0]
        return info

    @property
    def id(self) -> str:
        info = self.inspect()
        assert info, f"plugin {self.name} does not exist"
        return str(info["Id"])

    def enabled(self) -> bool:
        info = self.inspect()
        return bool(info and info["Enabled"])

    def socket(self) -> Path:
        return PLUGINS_RUN / self.id / SOCKET_NAME

    def create(self, directory: Path, state_dir: Path, *settings: str) -> None:
        """`docker plugin create` from DIR, its state on `state_dir`, then `set` SETTINGS."""
        state_dir.mkdir(parents=True, exist_ok=True)
        Path("/run/xtables.lock").touch(exist_ok=True)  # a bind source dockerd needs
        docker_logged("plugin", "create", self.name, str(directory))
        self.set(f"state.source={state_dir}", *settings)

    def set(self, *settings: str, check: bool = True) -> Out:
        return docker_logged("plugin", "set", self.name, *settings, check=check)

    def enable(self, timeout: float = 20) -> float:
        """Enable and wait until the socket answers /Plugin.Activate; returns the seconds
        that took. dockerd says "Enabled" before the socket is back: wait for the socket."""
        t0 = time.monotonic()
        docker_logged("plugin", "enable", self.name, timeout=60)
        self.wait_ready(timeout)
        return time.monotonic() - t0

    def wait_ready(self, timeout: float = 20) -> None:
        wait_for(lambda: self.enabled() and plugin_activates(self.socket()), timeout,
                 f"{self.socket()} to answer /Plugin.Activate")

    def disable(self, *, force: bool = False, check: bool = True) -> Out:
        return docker_logged("plugin", "disable", *(["-f"] if force else []), self.name, check=check)

    def remove(self) -> None:
        """Disable (forced) and rm (forced); nothing if the plugin does not exist."""
        if self.inspect() is None:
            return
        self.disable(force=True, check=False)
        docker_logged("plugin", "rm", "-f", self.name)

    def upgrade(self, directory: Path) -> Out:
        """The registry-free upgrade of scripts/build-plugin (disable, rm, create, re-set,
        enable) onto the build in DIRECTORY."""
        out = run([str(REPO / "scripts" / "build-plugin"), "--name", self.name, "--upgrade",
                   "--from-dir", str(directory)], check=False, timeout=300, env={**os.environ, "DOCKER": DOCKER})
        note(f"$ scripts/build-plugin --name {self.name} --upgrade --from-dir {directory}\n"
             f"{out.output}\n(exit {out.rc})")
        assert out.ok, f"build-plugin --upgrade failed:\n{out.output}"
        return out

    def pids(self) -> list[int]:
        """Host pids of the plugin's entrypoint: a `pynetdrv.managed_plugin` process whose
        mounts name the plugin's directory (<data-root>/plugins/<id>/rootfs) or whose parent,
        the containerd shim, carries the plugin's id."""
        plugin_id = self.id
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                if b"pynetdrv.managed_plugin" not in (proc / "cmdline").read_bytes():
                    continue
                ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
                parent = Path("/proc", ppid, "cmdline").read_bytes().decode(errors="replace")
                if f"/plugins/{plugin_id}/" in (proc / "mountinfo").read_text() or plugin_id in parent:
                    found.append(int(proc.name))
        return found

    def settings_env(self) -> list[str]:
        info = self.inspect()
        assert info
        return list(info["Settings"]["Env"])


@contextlib.contextmanager
def installed(state_dir: Path, *settings: str, enable: bool = True) -> Iterator[ManagedPlugin]:
    """The plugin created from the current build (built if needed), with its state in
    state_dir, enabled; disabled and removed afterwards, whatever happened."""
    plugin = ManagedPlugin()
    plugin.remove()  # an aborted run's leftover (we hold the integration lock)
    others = same_instance_plugins()
    assert not others, (f"enabled plugin(s) {others} serve the instance {INSTANCE} too (its links and "
                        f"iptables chains); disable them before running these tests")
    directory = plugin_dir()
    try:
        plugin.create(directory, state_dir, *settings)
        if enable:
            plugin.enable_seconds = plugin.enable()
            note(f"# enable + first answer of the socket: {plugin.enable_seconds:.1f} s")
        yield plugin
    finally:
        plugin.remove()


def same_instance_plugins() -> list[str]:
    """Enabled plugins other than ours whose socket is SOCKET_NAME: the same instance."""
    names = run([DOCKER, "plugin", "ls", "--format", "{{.Name}}"], check=False).split()
    found = []
    for name in names:
        if name == NAME:
            continue
        info = ManagedPlugin(name).inspect()
        if info and info["Enabled"] and info["Config"]["Interface"]["Socket"] == SOCKET_NAME:
            found.append(name)
    return found


def instance_links() -> dict[str, str]:
    """Host links with the managed plugin's alias (`pynetdrv-plugin:...`)."""
    result = {}
    for d in Path("/sys/class/net").iterdir():
        with contextlib.suppress(OSError):
            alias = (d / "ifalias").read_text().strip()
            if alias.startswith(f"{INSTANCE}:"):
                result[d.name] = alias
    return result


def instance_rules() -> list[str]:
    """iptables/ip6tables chains and rules of the managed plugin's instance."""
    chain = f"{INSTANCE.upper()}-"
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        lines += [line for line in run([tool], check=False, timeout=30).splitlines()
                  if chain in line and line.startswith((":", "-A"))]
    return lines


def module_plugin(tmp_path_factory: Any) -> Iterator[ManagedPlugin]:
    """Body of a test module's `managed` fixture: the plugin, enabled, for the module."""
    engine = run([DOCKER, "version", "--format", "{{.Server.Version}}"], check=False)
    note(f"\n######## Docker {engine} ({time.strftime('%Y-%m-%d %H:%M:%S')}) ########")
    with installed(tmp_path_factory.mktemp("mplugin-state")) as plugin:
        yield plugin


def left_clean(plugin: ManagedPlugin) -> None:
    """After a test: the plugin enabled again (if it still exists), the test's objects
    removed through it, and then no link or rule of the plugin's instance on the host."""
    if plugin.inspect() is not None and not plugin.enabled():
        plugin.enable()
    problems = cleanup_docker_objects()
    wait_for(lambda: not instance_links() and not instance_rules(), 20,
             f"no link or rule of {INSTANCE} left")
    assert not problems, problems
