"""The real dockerd under test: is it answering, which process is it, how was it started
(DockerdProcess), and restarting it with the same command line, environment and log."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from integration.cmd import CommandError, run, wait_for
from integration.constants import DOCKER, DOCKERD_LOG
from integration.engine_processes import note_killed
from integration.processes import children_of, cmdline_of, pid_gone, proc_state


def docker_answers(timeout: float = 10) -> bool:
    try:
        out = run([DOCKER, "info", "--format", "{{.ServerVersion}}"], check=False, timeout=timeout)
        # Docker 26.1's client exits 0 with empty output when the daemon does not answer.
        return out.ok and bool(out.strip())
    except CommandError:
        return False


def wait_docker(timeout: float = 60) -> None:
    wait_for(docker_answers, timeout, "dockerd to answer `docker info`", interval=0.5)


def dockerd_pid() -> int:
    pids = [int(p) for p in run(["pidof", "dockerd"], check=False).split()]
    if len(pids) > 1:  # several engines (e.g. one in a lab netns): take the one under test,
        # by its --exec-root ($PYNETDRV_IT_EXEC_ROOT or the default), else by its pid file
        want = Path(os.environ.get("PYNETDRV_IT_EXEC_ROOT") or "/var/run/docker").resolve()
        by_root = [p for p in pids if exec_root_of(cmdline_of(p)) == want]
        try:
            main = int(Path("/var/run/docker.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            main = -1
        pids = by_root if len(by_root) == 1 else [p for p in pids if p == main]
    if len(pids) != 1:
        raise AssertionError(f"expected exactly one dockerd, pidof says {pids}")
    return pids[0]


@dataclass
class DockerdProcess:
    pid: int
    cmdline: list[str]
    log_path: Path
    environ: dict[str, str] = field(default_factory=dict)


def _flag_value(cmdline: list[str], flag: str, default: str) -> str:
    """The value of dockerd's `--flag VALUE` / `--flag=VALUE` (the last one wins)."""
    value = default
    for i, arg in enumerate(cmdline):
        if arg == flag and i + 1 < len(cmdline):
            value = cmdline[i + 1]
        elif arg.startswith(f"{flag}="):
            value = arg.split("=", 1)[1]
    return value


def exec_root_of(cmdline: list[str]) -> Path:
    return Path(_flag_value(cmdline, "--exec-root", "/var/run/docker")).resolve()


def running_dockerd() -> DockerdProcess:
    pid = dockerd_pid()
    cmdline = cmdline_of(pid)
    log_path = DOCKERD_LOG
    try:
        target = os.readlink(f"/proc/{pid}/fd/1")
        if target.startswith("/") and Path(target).is_file():
            log_path = Path(target)
    except OSError:
        pass
    environ: dict[str, str] = {}
    try:
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if b"=" in item:
                k, v = item.decode(errors="replace").split("=", 1)
                environ[k] = v
    except OSError:
        environ = {}
    if "PATH" not in environ:
        environ["PATH"] = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return DockerdProcess(pid, cmdline, log_path, environ)


def start_dockerd(proc: DockerdProcess, timeout: float = 60) -> int:
    """Start dockerd again with the recorded command line, detached, appending to its log."""
    with open(proc.log_path, "ab") as log:
        log.write(f"---- test harness: starting {' '.join(proc.cmdline)}\n".encode())
    _remove_stale_pidfiles(proc)
    # sh backgrounds it and exits: dockerd is nobody's child here (no Popen left running).
    # With the environment it ran with (/proc/PID/environ): an engine started with its own
    # PATH (Docker 26.1 finds its containerd, shim and runc through PATH) must get it again.
    run(["/bin/sh", "-c", 'log=$1; shift; setsid "$@" </dev/null >>"$log" 2>&1 &', "sh",
         str(proc.log_path), *proc.cmdline], timeout=10, env=proc.environ)
    try:
        wait_docker(timeout)
    except AssertionError:
        raise AssertionError(f"dockerd did not answer within {timeout}s after restart; "
                             f"log tail:\n{tail(proc.log_path, 40)}") from None
    return dockerd_pid()


def _pidfile_of(cmdline: list[str]) -> Path:
    pidfile = "/var/run/docker.pid"
    for i, arg in enumerate(cmdline):
        if arg in ("-p", "--pidfile") and i + 1 < len(cmdline):
            pidfile = cmdline[i + 1]
        elif arg.startswith(("--pidfile=", "-p=")):
            pidfile = arg.split("=", 1)[1]
    return Path(pidfile)


def _remove_stale_pidfiles(proc: DockerdProcess) -> None:
    """A killed dockerd (and the containerd it supervised, killed with it) may stay zombies
    until init reaps them; a pid file naming a zombie makes the next dockerd believe the old
    one still runs ("pid file found", "containerd is still running" then a 60 s timeout).
    The processes are dead: drop pid files that name dead or zombie processes. The managed
    containerd's pid file lives under dockerd's --exec-root."""
    for pidfile in (_pidfile_of(proc.cmdline), exec_root_of(proc.cmdline) / "containerd" / "containerd.pid"):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid_gone(pid):
            pidfile.unlink(missing_ok=True)


def restart_dockerd(sig: int = signal.SIGTERM, stop_timeout: float = 60, start_timeout: float = 60) -> int:
    """Signal the running dockerd, wait for it (and the containerd it supervises) to exit,
    start the same command line again (same log file), wait for `docker info`."""
    proc = running_dockerd()
    kids = children_of(proc.pid)
    with open(proc.log_path, "ab") as log:
        log.write(f"---- test harness: sending {signal.Signals(sig).name} to dockerd {proc.pid}\n".encode())
    if sig == signal.SIGKILL:  # its shims may be orphaned: the teardown ends them
        note_killed(exec_root_of(proc.cmdline))
    os.kill(proc.pid, sig)
    try:
        wait_for(lambda: pid_gone(proc.pid), stop_timeout, f"dockerd {proc.pid} to exit", interval=0.2)
    except AssertionError:
        note_killed(exec_root_of(proc.cmdline))
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: pid_gone(proc.pid), 20, f"dockerd {proc.pid} to die on SIGKILL")
        start_dockerd(proc, start_timeout)
        raise
    # Its containerd dies with it (SIGKILL: parent-death signal; SIGTERM: stopped by dockerd);
    # give init a moment to reap them all. Should one live on, the new dockerd reconnects to
    # it; zombies' pid files are dropped by start_dockerd.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: all(proc_state(p) is None for p in [proc.pid, *kids]), 10,
                 f"dockerd {proc.pid} and its children {kids} to be gone")
    return start_dockerd(proc, start_timeout)


def tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(data.splitlines()[-lines:])
