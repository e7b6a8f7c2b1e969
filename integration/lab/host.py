"""One simulated host's processes: a private mount namespace entered in the host's netns
(`unshare -m --propagation private nsenter --net=...`, never `ip netns exec`, which remounts /sys
and kills dockerd), with RUN_DIR/hN/run bound over /run and sysfs remounted; in it pynetdrv on
/run/docker/plugins/pynetdrv.sock (so only this host's dockerd discovers it) and dockerd, which
starts its own containerd. Every process of a host lives in its netns or descends from one that
does: that is how `down` finds them, never by name."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from integration.engine_processes import descendants
from integration.engines import BASE_PATH, ENGINES, answers, spawn_detached
from integration.lab.topology import ETCD_CLIENT_PORT, ETCD_HOST, NETNS_DIR, HostSpec, LabError
from integration.processes import cmdline_of, pid_gone
from integration.pynetdrv_daemon import plugin_ready

ENGINE_ENV = "PNLAB_ENGINE"
DEFAULT_ENGINE = "20.10"
MODE_ENV = "PNLAB_MODE"
MODES = ("cluster", "single")
START_TIMEOUT = 60
PLUGIN_SOCKET_IN_HOST = "/run/docker/plugins/pynetdrv.sock"


def engine_bins(name: str | None = None) -> tuple[Path, Path, str]:
    """(dockerd, docker client, PATH) of the chosen engine (PNLAB_ENGINE, 20.10 by default)."""
    # under scripts/test, the engine the matrix runs (PYNETDRV_IT_ENGINE) unless told otherwise
    name = name or os.environ.get(ENGINE_ENV) or os.environ.get("PYNETDRV_IT_ENGINE") or DEFAULT_ENGINE
    if name not in ENGINES:
        raise LabError(f"unknown engine '{name}' (--engine / {ENGINE_ENV}; choose from: {' '.join(ENGINES)})")
    engine = ENGINES[name]
    if engine.packages is None:
        return Path("/usr/sbin/dockerd"), engine.client, BASE_PATH
    engine.fetch(say=lambda s: None)
    return engine.packages.bin / "dockerd", engine.client, f"{engine.packages.bin}:{BASE_PATH}"


def lab_mode(mode: str | None = None) -> str:
    """cluster (default: every pynetdrv on etcd in h1, VXLAN between hosts) or single (PNLAB_MODE)."""
    mode = mode or os.environ.get(MODE_ENV) or MODES[0]
    if mode not in MODES:
        raise LabError(f"unknown mode '{mode}' ({MODE_ENV}; choose from: {' '.join(MODES)})")
    return mode


def pynetdrv_argv(host: HostSpec, mode: str) -> list[str]:
    """The host's `pynetdrv serve`: cluster mode shares pools/addresses through etcd on h1 and
    advertises the host's underlay address as its VXLAN endpoint; single mode is SQLite only."""
    argv = [sys.executable, "-m", "pynetdrv", "serve", "--socket", PLUGIN_SOCKET_IN_HOST,
            "--state", str(host.data_dir / "pynetdrv.db"), "--log-level", "debug"]
    if mode == "cluster":
        argv += ["--store", f"etcd://{ETCD_HOST.address}:{ETCD_CLIENT_PORT}", "--advertise-address", host.address]
    return argv


def host_mode(host: HostSpec) -> str:
    """The mode the host was started in (recorded by start_host), so a restart keeps it."""
    try:
        return lab_mode((host.data_dir / "mode").read_text().strip())
    except FileNotFoundError:
        return lab_mode()


def host_script(host: HostSpec, dockerd: Path, mode: str) -> str:
    q = shlex.quote
    pynetdrv = pynetdrv_argv(host, mode)
    config = host.data_dir / "daemon.json"
    dockerd_argv = [str(dockerd), "--config-file", str(config), "--data-root", str(host.data_dir / "docker"),
                    "--exec-root", host.exec_root, "--pidfile", f"{host.exec_root}.pid",
                    "-H", "unix:///run/docker.sock", "--cgroup-parent", host.cgroup_parent,
                    "--bip", f"172.30.{host.index}.1/24"]
    return "\n".join([
        "set -e",
        f"mount --bind {q(str(host.run_dir))} /run",
        # a fresh sysfs shows this netns's links; the cgroup mounts are carried over onto it
        "mkdir -p /run/.pnlab-cgroup && mount --rbind /sys/fs/cgroup /run/.pnlab-cgroup",
        "mount -t sysfs sysfs /sys",
        "mount --rbind /run/.pnlab-cgroup /sys/fs/cgroup && umount -l /run/.pnlab-cgroup",
        "mkdir -p /run/docker/plugins /run/lock",
        f"{' '.join(q(a) for a in pynetdrv)} >>{q(str(host.data_dir / 'pynetdrv.log'))} 2>&1 &",
        f"exec {' '.join(q(a) for a in dockerd_argv)}",
    ])


def _env(path: str) -> dict[str, str]:
    return {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(sys.path),
            "GRPC_ENABLE_FORK_SUPPORT": "0"}


def start_host(host: HostSpec, engine: str | None = None, mode: str | None = None) -> None:
    """Start the host's pynetdrv + dockerd unless its dockerd answers (idempotent)."""
    dockerd, client, path = engine_bins(engine)
    mode = lab_mode(mode)
    host.run_dir.mkdir(parents=True, exist_ok=True)
    host.data_dir.mkdir(parents=True, exist_ok=True)
    host.client.write_text(f"#!/bin/sh\nexec {shlex.quote(str(client))} -H unix://{host.docker_sock} \"$@\"\n")
    host.client.chmod(0o755)
    (host.data_dir / "daemon.json").write_text("{}\n")
    (host.data_dir / "engine").write_text(f"{engine or ''}\n")
    if answers(host.client, timeout=5) and plugin_ready(host.plugin_sock):
        return
    if host_pids(host, engine_only=True):
        stop_host(host, engine_only=True)  # half up (a failed earlier `up`): start it again from scratch
    _remove_stale_pidfile(host)
    (host.data_dir / "mode").write_text(f"{mode}\n")
    argv = ["unshare", "-m", "--propagation", "private", "nsenter", f"--net={NETNS_DIR / host.netns}",
            "sh", "-c", host_script(host, dockerd, mode)]
    spawn_detached(argv, _env(path), host.data_dir / "dockerd.log")
    _wait_ready(host, lambda: answers(host.client, timeout=3) and plugin_ready(host.plugin_sock), "dockerd/pynetdrv")


def _remove_stale_pidfile(host: HostSpec) -> None:
    """A SIGKILLed dockerd leaves its --pidfile; if that pid is now a zombie nobody has reaped yet,
    a new dockerd refuses to start ("process with PID N is still running"). Seen from outside, the
    host's /run is host.run_dir."""
    pidfile = host.run_dir / f"{Path(host.exec_root).name}.pid"
    try:
        pid = int(pidfile.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        return
    if pid <= 0 or pid_gone(pid):
        pidfile.unlink(missing_ok=True)


def _wait_ready(host: HostSpec, ready: Callable[[], bool], what: str) -> None:
    started = time.monotonic()
    while time.monotonic() < started + START_TIMEOUT:
        if ready():
            return
        if time.monotonic() > started + 5 and _pynetdrv_exited(host):
            break
        time.sleep(0.3)
    tail = "\n  ".join(_log_tail(host.data_dir / "pynetdrv.log"))
    raise LabError(f"{host.name}: {what} not ready (logs: {host.data_dir}/dockerd.log, "
                   f"{host.data_dir}/pynetdrv.log; its end:\n  {tail})")


def _log_tail(log: Path, lines: int = 8) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


def _pynetdrv_exited(host: HostSpec) -> bool:
    """pynetdrv is gone while dockerd runs (e.g. it refused its command line): no use waiting."""
    return (dockerd_pid(host) is not None and pynetdrv_pid(host) is None
            and bool(_log_tail(host.data_dir / "pynetdrv.log")))


def _pid_running(host: HostSpec, match: Callable[[list[str]], bool]) -> int | None:
    for pid in host_pids(host, engine_only=True):
        argv = cmdline_of(pid)
        if argv and match(argv):
            return pid
    return None


def dockerd_pid(host: HostSpec) -> int | None:
    return _pid_running(host, lambda a: os.path.basename(a[0]) == "dockerd")


def pynetdrv_pid(host: HostSpec) -> int | None:
    return _pid_running(host, lambda a: a[1:4] == ["-m", "pynetdrv", "serve"])


def kill_pynetdrv(host: HostSpec) -> None:
    """SIGKILL the host's pynetdrv (a crash); its dockerd and containers go on."""
    pid = pynetdrv_pid(host)
    if pid is None:
        raise LabError(f"{host.name}: no pynetdrv running")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def start_pynetdrv(host: HostSpec) -> None:
    """Start pynetdrv again inside the running host (its dockerd's mount and network namespaces),
    in the mode and with the engine PATH the host was started with."""
    pid = dockerd_pid(host)
    if pid is None:
        raise LabError(f"{host.name}: dockerd is not running; start the host instead")
    engine = (host.data_dir / "engine").read_text().strip() or None
    path = engine_bins(engine)[2]
    argv = ["nsenter", "-t", str(pid), "-m", "-n", *pynetdrv_argv(host, host_mode(host))]
    spawn_detached(argv, _env(path), host.data_dir / "pynetdrv.log")
    _wait_ready(host, lambda: plugin_ready(host.plugin_sock), "pynetdrv")


def _netns_inode(host: HostSpec) -> int | None:
    try:
        return os.stat(NETNS_DIR / host.netns).st_ino
    except OSError:
        return None


def _is_etcd(pid: int) -> bool:
    argv = cmdline_of(pid)
    return bool(argv) and os.path.basename(argv[0]) == "etcd"


def host_pids(host: HostSpec, engine_only: bool = False) -> list[int]:
    """Processes in the host's netns and all their descendants (containers run in their own netns);
    engine_only: without the lab's etcd (h1 hosts it next to its dockerd)."""
    ino = _netns_inode(host)
    if ino is None:
        return []
    roots = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino == ino and not (engine_only and _is_etcd(int(entry.name))):
                    roots.append(int(entry.name))
            except OSError:
                continue
    pids = set(roots)
    for pid in roots:
        pids.update(descendants(pid))
    return sorted(p for p in pids if not pid_gone(p) and p != os.getpid())


def stop_host(host: HostSpec, timeout: float = 20, engine_only: bool = False) -> list[str]:
    """SIGTERM dockerd (so it stops its containers), then SIGKILL whatever of the host is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = host_pids(host, engine_only)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10)
        while time.monotonic() < deadline and host_pids(host, engine_only):
            time.sleep(0.2)
    left = host_pids(host, engine_only)
    return [f"{host.name}: process {p} survived SIGKILL" for p in left]


def cgroup_dirs(host: HostSpec) -> list[Path]:
    """The host's --cgroup-parent directories in every cgroup hierarchy (v1 and v2)."""
    root = Path("/sys/fs/cgroup")
    name = host.cgroup_parent.strip("/")
    found = [root / name] if (root / name).is_dir() else []
    return found + [d / name for d in root.iterdir() if d.is_dir() and (d / name).is_dir()]


def remove_cgroups(host: HostSpec) -> list[str]:
    problems = []
    for top in cgroup_dirs(host):
        for d in [*sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True), top]:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f"{host.name}: cgroup {d}: {e}")
    return problems


def health(host: HostSpec) -> dict[str, bool]:
    return {"dockerd": host.client.exists() and answers(host.client, timeout=3),
            "pynetdrv": plugin_ready(host.plugin_sock)}
