"""The Docker engines the integration suite runs against, one at a time, all serving the
default socket /var/run/docker.sock; starting, stopping and telling them apart.

  20.10  The machine's engine: Debian bookworm's docker.io (/usr/sbin/dockerd, client
         /usr/bin/docker), or whichever dockerd already serves the default socket with the
         default exec root. SystemDockerd records how it ran, to start it again afterwards.
  26.1   Debian trixie's docker.io 26.1, containerd 1.7 and docker-cli,
  28.5   Debian sid's docker.io 28.5, containerd 2.1 and docker-cli: unpacked under
         /opt/pynetdrv-engines/docker-<name> (engine_packages.py) and run with bookworm's runc
         and docker-init (the newer releases' runc needs a newer glibc), their own --data-root,
         --exec-root and --pidfile, and a PATH with their own bin dir first (so the containerd
         and shim dockerd spawns are that release's).

Docker Compose v2 (sid's docker-compose 2.40) is unpacked the same way (COMPOSE).

Every stop ends the engine's processes - dockerd (SIGTERM, bounded wait, SIGKILL), its
containerd, and the shims and container processes of its containers (engine_processes.py,
by exec root) - and checks that none is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from integration.engine_packages import PackageSet, fetch_unpacked
from integration.engine_processes import DEFAULT_EXEC_ROOT, engine_processes, reap
from integration.processes import cmdline_of, pid_gone

SYSTEM_DOCKER = Path("/usr/bin/docker")
SYSTEM_DOCKERD = Path("/usr/sbin/dockerd")
SYSTEM_DOCKERD_LOG = Path("/var/log/pynetdrv-test-dockerd.log")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_TIMEOUT = 60  # seconds dockerd gets to stop its containers on SIGTERM
START_TIMEOUT = 60

Say = Callable[[str], None]


class EngineError(RuntimeError):
    """An engine could not be fetched, started or stopped; the message says which and why."""


def _docker_engine_packages(name: str, suite: str) -> PackageSet:
    return PackageSet(
        name=f"docker-{name}", suite=suite, packages=("docker.io", "containerd", "docker-cli"),
        want_version=f"{name}.",
        # runc and docker-init stay bookworm's; the release's runc is not even downloaded.
        links=(("dockerd", "usr/sbin/dockerd"), ("docker-proxy", "usr/sbin/docker-proxy"),
               ("containerd", "usr/bin/containerd"), ("containerd-shim-runc-v2", "usr/bin/containerd-shim-runc-v2"),
               ("docker", "usr/bin/docker"), ("runc", "/usr/sbin/runc"), ("docker-init", "/usr/bin/tini-static")),
        probes=("dockerd", "containerd", "docker"))


COMPOSE = PackageSet(name="compose", suite="sid", packages=("docker-compose",), want_version="2.40.",
                     links=(("docker-compose", "usr/libexec/docker/cli-plugins/docker-compose"),),
                     probes=("docker-compose",))


@dataclass(frozen=True)
class Engine:
    name: str
    packages: PackageSet | None  # None: the machine's engine

    @property
    def system(self) -> bool:
        return self.packages is None

    @property
    def client(self) -> Path:
        return SYSTEM_DOCKER if self.packages is None else self.packages.bin / "docker"

    @property
    def exec_root(self) -> Path:
        return DEFAULT_EXEC_ROOT if self.system else Path(f"/var/run/pynetdrv-docker-{self.name}")

    @property
    def data_root(self) -> Path:
        return Path("/var/lib/docker") if self.system else Path(f"/var/lib/pynetdrv-docker-{self.name}")

    @property
    def pidfile(self) -> Path:
        return Path("/var/run/docker.pid") if self.system else Path(f"/var/run/pynetdrv-docker-{self.name}.pid")

    @property
    def log(self) -> Path:
        return SYSTEM_DOCKERD_LOG if self.system else Path(f"/var/log/pynetdrv-test-dockerd-{self.name}.log")

    def dockerd_pid(self) -> int | None:
        pids = [p.pid for p in engine_processes(self.exec_root) if p.kind == "dockerd"]
        return pids[0] if pids else None

    def fetch(self, say: Say = print) -> None:
        if self.packages is not None:
            fetch_unpacked(self.packages, say)

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The dockerd command line and (clean, explicit) environment of a fetched engine. The
        integration tests restart it with what they read from /proc, so this is all it needs."""
        assert self.packages is not None
        env = {"PATH": f"{self.packages.bin}:{BASE_PATH}", "HOME": "/root", "LANG": "C.UTF-8"}
        return ([str(self.packages.bin / "dockerd"), "--data-root", str(self.data_root),
                 "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile)], env)


ENGINES = {
    "20.10": Engine("20.10", None),
    "26.1": Engine("26.1", _docker_engine_packages("26.1", "trixie")),
    "28.5": Engine("28.5", _docker_engine_packages("28.5", "sid")),
}
DEFAULT_ENGINES = "20.10 26.1 28.5"


def parse_engines(spec: str) -> list[Engine]:
    names = spec.replace(",", " ").split()
    if not names:
        raise EngineError(f"PYNETDRV_ENGINES names no engine (choose from: {' '.join(ENGINES)})")
    for name in names:
        if name not in ENGINES:
            raise EngineError(f"unknown engine '{name}' in PYNETDRV_ENGINES (choose from: {' '.join(ENGINES)})")
    return [ENGINES[name] for name in names]


# ---- talking to an engine -------------------------------------------------------------------


def answers(client: Path, timeout: float = 10) -> bool:
    try:
        out = subprocess.run([str(client), "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and bool(out.stdout.strip())  # 26.1's client: exit 0, no output


def server_version(client: Path) -> str:
    try:
        out = subprocess.run([str(client), "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


def wait_answers(client: Path, log: Path, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not answers(client):
        if time.monotonic() >= deadline:
            raise EngineError(f"{what} did not answer `docker info` within {timeout:.0f} s; "
                              f"last lines of {log}:\n{log_tail(log)}")
        time.sleep(0.5)


def remove_stale_pidfiles(*paths: Path) -> None:
    """dockerd refuses to start on a pid file naming a live-looking process (a zombie too), and
    so does its managed containerd (ROOT/containerd/containerd.pid): drop those of dead ones."""
    for path in paths:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if not text.isdigit() or pid_gone(int(text)):
            path.unlink(missing_ok=True)


def spawn_detached(argv: list[str], env: dict[str, str], log: Path) -> None:
    """Start argv in its own session, stdin from /dev/null, appending to log; nobody's child
    once the intermediate shell exits (it must outlive this process, and keep no lock fd)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"---- pynetdrv engines: starting {' '.join(argv)}\n".encode())
    subprocess.run(["/bin/sh", "-c", 'log=$1; shift; setsid "$@" </dev/null >>"$log" 2>&1 &', "sh", str(log), *argv],
                   env=env, check=True, timeout=10, close_fds=True)


# ---- starting and stopping -----------------------------------------------------------------


def start(engine: Engine, say: Say = print) -> None:
    """Start a fetched engine (no-op if it runs); the machine's engine: see ensure_system_dockerd."""
    if engine.system:
        ensure_system_dockerd(say)
        return
    if engine.dockerd_pid() is None:
        others = [p for p in _all_dockerds() if p != engine.dockerd_pid()]
        if answers(engine.client):
            raise EngineError(f"engine {engine.name}: another dockerd answers on /var/run/docker.sock "
                              f"(dockerd pids: {others}); stop it first")
        say(f"engine {engine.name}: starting {engine.packages.bin if engine.packages else ''}/dockerd "
            f"(log: {engine.log})")
        remove_stale_pidfiles(engine.pidfile, engine.exec_root / "containerd" / "containerd.pid")
        argv, env = engine.command()
        spawn_detached(argv, env, engine.log)
    wait_answers(engine.client, engine.log, f"dockerd {engine.name}")


def _all_dockerds() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir()
            if d.name.isdigit() and os.path.basename((cmdline_of(int(d.name)) or [""])[0]) == "dockerd"]


def stop(engine: Engine, say: Say = print) -> None:
    """Stop the engine: SIGTERM to dockerd (it stops its containers and its containerd), wait
    up to STOP_TIMEOUT s, then SIGKILL; then end whatever of the engine is left (containerd,
    shims, container processes) and fail if anything still runs."""
    pid = engine.dockerd_pid()
    if pid is not None:
        say(f"engine {engine.name}: stopping dockerd (pid {pid})")
        _signal(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            say(f"engine {engine.name}: dockerd {pid} did not exit within {STOP_TIMEOUT} s of SIGTERM; SIGKILL")
            _signal(pid, signal.SIGKILL)
            if not _wait_gone(pid, 10):
                raise EngineError(f"engine {engine.name}: dockerd {pid} does not exit on SIGKILL")
        # Its containerd exits after it (stopped by dockerd, or its parent-death signal), and the
        # shims of the containers it stopped exit on their own: give them all a bounded moment.
        _wait_until(lambda: not engine_processes(engine.exec_root), 20)
    left = engine_processes(engine.exec_root)
    if left:
        say(f"engine {engine.name}: ending what is left of it: " + "; ".join(str(p) for p in left))
        problems = reap(left)
        if problems:
            raise EngineError(f"engine {engine.name}: " + "; ".join(problems))
    check_nothing_left(engine)


def check_nothing_left(engine: Engine) -> None:
    left = engine_processes(engine.exec_root)
    if left:
        raise EngineError(f"engine {engine.name} is stopped but its processes still run: "
                          + "; ".join(str(p) for p in left))


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    return _wait_until(lambda: pid_gone(pid), timeout)


# ---- the machine's engine ("20.10"): start it if needed, remember it, bring it back -----------


def ensure_system_dockerd(say: Say = print) -> None:
    """A dockerd answering on the default socket: start /usr/sbin/dockerd unless one does."""
    if answers(SYSTEM_DOCKER):
        say("dockerd: already running")
        return
    pid = ENGINES["20.10"].dockerd_pid()
    if pid is not None:
        say(f"dockerd: running (pid {pid}) but not answering yet; waiting")
    else:
        say(f"dockerd: starting {SYSTEM_DOCKERD} (log: {SYSTEM_DOCKERD_LOG})")
        remove_stale_pidfiles(Path("/var/run/docker.pid"), DEFAULT_EXEC_ROOT / "containerd" / "containerd.pid")
        spawn_detached([str(SYSTEM_DOCKERD)], {"PATH": BASE_PATH, "HOME": "/root", "LANG": "C.UTF-8"},
                       SYSTEM_DOCKERD_LOG)
    wait_answers(SYSTEM_DOCKER, SYSTEM_DOCKERD_LOG, "dockerd")
    say(f"dockerd: ready (pid {ENGINES['20.10'].dockerd_pid()})")


@dataclass
class SystemDockerd:
    """How the machine's dockerd ran before the engines were switched, to start it again the
    same way (command line, environment, log) afterwards; a machine where none ran is left so."""

    was_running: bool = False
    via_systemd: bool = False
    cmdline: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)
    log: Path = SYSTEM_DOCKERD_LOG

    @classmethod
    def record(cls) -> SystemDockerd:
        pid = ENGINES["20.10"].dockerd_pid()
        if pid is None:
            return cls()
        rec = cls(was_running=True, cmdline=cmdline_of(pid))
        rec.via_systemd = Path("/run/systemd/system").is_dir() and subprocess.run(
            ["systemctl", "is-active", "--quiet", "docker.service"], check=False).returncode == 0
        try:
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                if b"=" in item:
                    key, value = item.decode(errors="replace").split("=", 1)
                    rec.environ[key] = value
        except OSError:
            pass
        rec.environ.setdefault("PATH", BASE_PATH)
        try:
            target = os.readlink(f"/proc/{pid}/fd/1")
            if target.startswith("/") and Path(target).is_file():
                rec.log = Path(target)
        except OSError:
            pass
        return rec

    def stop(self, say: Say = print) -> None:
        if self.via_systemd and ENGINES["20.10"].dockerd_pid() is not None:
            say("engine 20.10: stopping docker.service (systemd)")
            subprocess.run(["systemctl", "stop", "docker.socket", "docker.service"], check=False)
        stop(ENGINES["20.10"], say)

    def restore(self, say: Say = print) -> None:
        if not self.was_running or ENGINES["20.10"].dockerd_pid() is not None:
            return
        if self.via_systemd:
            say("engine 20.10: starting docker.service again (it ran before scripts/test)")
            subprocess.run(["systemctl", "start", "docker.socket", "docker.service"], check=False)
        else:
            say(f"engine 20.10: starting the dockerd that ran before scripts/test again: {' '.join(self.cmdline)} "
                f"(log: {self.log})")
            remove_stale_pidfiles(Path("/var/run/docker.pid"), DEFAULT_EXEC_ROOT / "containerd" / "containerd.pid")
            spawn_detached(self.cmdline, self.environ, self.log)
        wait_answers(SYSTEM_DOCKER, self.log, "the restored dockerd")
        say(f"engine 20.10: Docker {server_version(SYSTEM_DOCKER)} running again "
            f"(pid {ENGINES['20.10'].dockerd_pid()})")
