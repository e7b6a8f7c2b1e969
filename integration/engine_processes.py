"""The processes of one Docker engine, told apart from other engines' by its --exec-root (never
by name alone): its dockerd (`--exec-root ROOT`, the default /var/run/docker if none), the
containerd that dockerd supervises (`--config ROOT/containerd/containerd.toml`), and the
containerd shims of its containers (`-namespace moby ... -address ROOT/containerd/containerd.sock`),
whose descendants are the containers' processes.

A shim outlives its containerd by design (containerd reconnects to it on restart). When an
engine is killed and its state lost, or stopped while a shim hangs, the shim and the
container's processes are left running with nothing behind them: reap() ends them."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from integration.cmd import wait_for
from integration.processes import children_of, cmdline_of, pid_gone

DEFAULT_EXEC_ROOT = Path("/var/run/docker")
SHIM_NAMESPACE = "moby"  # dockerd's containerd namespace


#: Exec roots of engines a test SIGKILLed (dockerd.restart_dockerd, faults.kill_dockerd): the
#: integration tests' teardown ends those engines' orphaned shims; the leak check of any other
#: test counts them as leaks. Cleared at the start of each test.
KILLED_ENGINES: set[Path] = set()


def note_killed(exec_root: Path | str) -> None:
    KILLED_ENGINES.add(_resolved(str(exec_root)))


@dataclass(frozen=True)
class EngineProcess:
    pid: int
    kind: str  # "dockerd", "containerd" or "shim"
    cmdline: tuple[str, ...]
    container_id: str = ""  # shims: the container (task) they run

    def __str__(self) -> str:
        return f"{self.kind} {self.pid} ({' '.join(self.cmdline)[:200]})"


def _flag(cmdline: list[str], *names: str) -> str | None:
    """The value of `--name VALUE` / `--name=VALUE` (the last one wins), None if absent."""
    value = None
    for i, arg in enumerate(cmdline):
        for name in names:
            if arg == name and i + 1 < len(cmdline):
                value = cmdline[i + 1]
            elif arg.startswith(f"{name}="):
                value = arg.split("=", 1)[1]
    return value


def _resolved(path: str) -> Path:
    return Path(os.path.normpath(path)).resolve()


def classify(pid: int, cmdline: list[str], exec_root: Path) -> EngineProcess | None:
    """The process as one of the engine's (exec_root resolved), or None if it is not."""
    if not cmdline:
        return None
    name = os.path.basename(cmdline[0])
    ours = exec_root / "containerd"
    if name == "dockerd":
        if _resolved(_flag(cmdline, "--exec-root") or str(DEFAULT_EXEC_ROOT)) == exec_root:
            return EngineProcess(pid, "dockerd", tuple(cmdline))
        return None
    if name.startswith("containerd-shim"):
        address = _flag(cmdline, "-address", "--address")
        namespace = _flag(cmdline, "-namespace", "--namespace")
        if address and namespace == SHIM_NAMESPACE and _resolved(address).parent == ours:
            return EngineProcess(pid, "shim", tuple(cmdline), _flag(cmdline, "-id", "--id") or "")
        return None
    if name == "containerd":
        config = _flag(cmdline, "--config", "-c")
        if config and _resolved(config).parent == ours:
            return EngineProcess(pid, "containerd", tuple(cmdline))
    return None


def engine_processes(exec_root: Path | str) -> list[EngineProcess]:
    """The live (not zombie) dockerd, containerd and shims of the engine with this exec root."""
    root = _resolved(str(exec_root))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        proc = classify(pid, cmdline_of(pid), root)
        if proc is not None and not pid_gone(pid):
            found.append(proc)
    return sorted(found, key=lambda p: p.pid)


def orphan_shims(exec_root: Path | str, known_ids: set[str]) -> list[EngineProcess]:
    """The engine's shims for containers its dockerd does not know (known_ids: full ids of
    `docker ps -a`): nothing will ever stop them."""
    return [p for p in engine_processes(exec_root) if p.kind == "shim" and p.container_id not in known_ids]


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children_of(todo.pop())
        found += kids
        todo += kids
    return found


def reap(procs: list[EngineProcess], timeout: float = 10) -> list[str]:
    """SIGKILL these processes and every descendant of theirs (a shim's: the container's
    processes), then wait until all are gone. Returns what could not be ended (empty: done)."""
    targets: list[int] = []
    for proc in procs:
        targets += [proc.pid, *descendants(proc.pid)]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        wait_for(lambda: all(pid_gone(p) for p in targets), timeout, f"processes {targets} to die on SIGKILL")
    except AssertionError:
        return [f"process {p} ({' '.join(cmdline_of(p))[:120]}) survived SIGKILL" for p in targets if not pid_gone(p)]
    return []
