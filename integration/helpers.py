"""Helpers for the integration tests: the real dockerd, the pynetdrv daemon, host inspection.

Everything here talks to the real system: the docker client of the engine under test
($PYNETDRV_IT_DOCKER, set by ./scripts/test; by default /usr/bin/docker, the client matching
Debian's engine), `ip`, `iptables-save`, /proc and /sys. Every wait is a bounded poll.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

# The client of the engine under test: scripts/test points this at the engine it started
# (e.g. Docker 26.1 extracted under /opt/pynetdrv-engines); /usr/bin/docker matches Debian's.
DOCKER = os.environ.get("PYNETDRV_IT_DOCKER") or "/usr/bin/docker"
IMAGE = "local/busybox:latest"
PLUGIN = "pynetdrv-it"
PLUGIN_SOCKET = Path(f"/run/docker/plugins/{PLUGIN}.sock")
DOCKERD_LOG = Path("/var/log/pynetdrv-test-dockerd.log")
LABEL = "pynetdrv-it"  # label key on every container/network the tests create
NAME_PREFIX = "pnit-"  # prefix of every container/network name the tests create
# pynetdrv marks the links it creates with the alias "<instance>:<kind>:<id>", the instance
# being the plugin name: "pynetdrv:" for a default daemon, "pynetdrv-it:" for ours. Links of
# another instance (a developer's daemon, concurrently running tests) are not ours to judge.
ALIAS_PREFIX = f"{PLUGIN}:"
ALIAS_PREFIXES = ("pynetdrv:", ALIAS_PREFIX)
LINK_PREFIXES = ("pnbr-", "pnve-", "pnvc-")

# A container that exits at once on SIGTERM (dockerd's graceful shutdown, docker stop).
IDLE_CMD = ["sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait"]


class CommandError(AssertionError):
    """A command the test needed failed; the message carries its output."""


class Out(str):
    """stdout of a command (stripped), with .rc and .stderr attached."""

    rc: int
    stderr: str
    argv: list[str]

    def __new__(cls, stdout: str, rc: int, stderr: str, argv: list[str]) -> Out:  # noqa: PYI034
        obj = super().__new__(cls, stdout.strip())
        obj.rc = rc
        obj.stderr = stderr.strip()
        obj.argv = argv
        return obj

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def output(self) -> str:
        """stdout and stderr together (docker prints errors on stderr)."""
        return f"{self}\n{self.stderr}".strip()


def run(argv: list[str], *, check: bool = True, timeout: float = 60, input: str | None = None,
        env: dict[str, str] | None = None) -> Out:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input, check=False,
            stdin=None if input is not None else subprocess.DEVNULL, env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"timed out after {timeout}s: {' '.join(argv)}\n"
                           f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}") from None
    out = Out(proc.stdout, proc.returncode, proc.stderr, argv)
    if check and proc.returncode != 0:
        raise CommandError(f"exit {proc.returncode}: {' '.join(argv)}\n"
                           f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
    return out


def docker(*args: str, check: bool = True, timeout: float = 60) -> Out:
    """Run the docker client (DOCKER); returns its stdout (an Out: also .rc, .stderr)."""
    return run([DOCKER, *args], check=check, timeout=timeout)


def docker_json(*args: str, timeout: float = 60) -> Any:
    return json.loads(docker(*args, timeout=timeout))


def unique(kind: str) -> str:
    return f"{NAME_PREFIX}{kind}-{secrets.token_hex(3)}"


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll pred() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except (CommandError, OSError, ValueError, KeyError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The plugin's unix socket


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def plugin_call(sock_path: Path | str, path: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
    """POST to the plugin like dockerd does; returns (status, decoded JSON or raw text)."""
    conn = _UnixHTTPConnection(str(sock_path), timeout)
    try:
        data = b"" if body is None else (json.dumps(body) + "\n").encode()
        conn.request("POST", path, body=data, headers={
            "Accept": "application/vnd.docker.plugins.v1.2+json", "Host": "",
            "Content-Length": str(len(data)),
        })
        resp = conn.getresponse()
        raw = resp.read().decode(errors="replace")
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def plugin_activates(sock_path: Path | str) -> bool:
    try:
        status, body = plugin_call(sock_path, "/Plugin.Activate", timeout=2)
    except OSError:
        return False
    return status == 200 and isinstance(body, dict) and "NetworkDriver" in body.get("Implements", [])


# ---------------------------------------------------------------------------------------------
# The pynetdrv daemon under test


class PynetdrvDaemon:
    """`python -m pynetdrv serve` as a subprocess, restartable against the same state file."""

    def __init__(self, socket_path: Path, state_path: Path, log_path: Path) -> None:
        self.socket_path = socket_path
        self.state_path = state_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self.starts = 0

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "pynetdrv", "serve", "--socket", str(self.socket_path),
                "--state", str(self.state_path), "--log-level", "debug"]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 30) -> None:
        assert not self.running(), "pynetdrv is already running"
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_size()
        log = self._log = open(self.log_path, "ab")  # noqa: SIM115 (kept open while it runs)
        log.write(f"---- test harness: starting {' '.join(self.argv)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not plugin_activates(self.socket_path):
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._close_log()
                raise AssertionError(f"pynetdrv exited with {rc} before serving; its log:\n"
                                     f"{self.log_text(offset)[-4000:]}")
            if time.monotonic() >= deadline:
                self.proc.kill()
                self.proc.wait(10)
                self._close_log()
                raise AssertionError(f"pynetdrv did not answer /Plugin.Activate on {self.socket_path} "
                                     f"within {timeout}s (killed it); its log:\n{self.log_text(offset)[-4000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the daemon and wait for it to exit; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._close_log()
                raise AssertionError(f"pynetdrv did not exit within {timeout}s of {signal.Signals(sig).name}")
        self._close_log()
        with open(self.log_path, "ab") as f:
            f.write(f"---- test harness: pynetdrv exited with {self.proc.returncode}\n".encode())
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def leftover_daemons(socket_path: Path) -> list[int]:
    """pids of `pynetdrv serve --socket socket_path` processes (an aborted earlier run's)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            argv = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "pynetdrv" in " ".join(argv) and "serve" in argv and str(socket_path) in argv:
            pids.append(int(d.name))
    return pids


def end_process(pid: int, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: pid_gone(pid), timeout, f"process {pid} to exit on SIGTERM")
    except ProcessLookupError:
        return
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: pid_gone(pid), 10, f"process {pid} to die on SIGKILL")


# ---------------------------------------------------------------------------------------------
# The real dockerd


def docker_answers(timeout: float = 10) -> bool:
    try:
        return run([DOCKER, "info", "--format", "{{.ServerVersion}}"], check=False, timeout=timeout).ok
    except CommandError:
        return False


def wait_docker(timeout: float = 60) -> None:
    wait_for(docker_answers, timeout, "dockerd to answer `docker info`", interval=0.5)


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_gone(pid: int) -> bool:
    state = _proc_state(pid)
    if state in (None, "Z", "X"):
        if state == "Z":
            try:  # reap it if it happens to be our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        return True
    return False


def dockerd_pid() -> int:
    pids = [int(p) for p in run(["pidof", "dockerd"], check=False).split()]
    if len(pids) > 1:  # several engines (e.g. one in a lab netns): take the one under test,
        # by its --exec-root ($PYNETDRV_IT_EXEC_ROOT or the default), else by its pid file
        want = Path(os.environ.get("PYNETDRV_IT_EXEC_ROOT") or "/var/run/docker").resolve()
        by_root = [p for p in pids if _exec_root_of(_cmdline(p)) == want]
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


def _cmdline(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if a]
    except OSError:
        return []


def _flag_value(cmdline: list[str], flag: str, default: str) -> str:
    """The value of dockerd's `--flag VALUE` / `--flag=VALUE` (the last one wins)."""
    value = default
    for i, arg in enumerate(cmdline):
        if arg == flag and i + 1 < len(cmdline):
            value = cmdline[i + 1]
        elif arg.startswith(f"{flag}="):
            value = arg.split("=", 1)[1]
    return value


def _exec_root_of(cmdline: list[str]) -> Path:
    return Path(_flag_value(cmdline, "--exec-root", "/var/run/docker")).resolve()


def running_dockerd() -> DockerdProcess:
    pid = dockerd_pid()
    cmdline = _cmdline(pid)
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


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return kids


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
    for pidfile in (_pidfile_of(proc.cmdline), _exec_root_of(proc.cmdline) / "containerd" / "containerd.pid"):
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
    kids = _children(proc.pid)
    with open(proc.log_path, "ab") as log:
        log.write(f"---- test harness: sending {signal.Signals(sig).name} to dockerd {proc.pid}\n".encode())
    os.kill(proc.pid, sig)
    try:
        wait_for(lambda: pid_gone(proc.pid), stop_timeout, f"dockerd {proc.pid} to exit", interval=0.2)
    except AssertionError:
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: pid_gone(proc.pid), 20, f"dockerd {proc.pid} to die on SIGKILL")
        start_dockerd(proc, start_timeout)
        raise
    # Its containerd dies with it (SIGKILL: parent-death signal; SIGTERM: stopped by dockerd);
    # give init a moment to reap them all. Should one live on, the new dockerd reconnects to
    # it; zombies' pid files are dropped by start_dockerd.
    try:
        wait_for(lambda: all(_proc_state(p) is None for p in [proc.pid, *kids]), 10,
                 f"dockerd {proc.pid} and its children {kids} to be gone")
    except AssertionError:
        pass
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


# ---------------------------------------------------------------------------------------------
# Host inspection


def links() -> dict[str, str]:
    """{ifname: ifalias} for every link in the host namespace."""
    result = {}
    for d in Path("/sys/class/net").iterdir():
        try:
            alias = (d / "ifalias").read_text().strip()
        except OSError:
            alias = ""
        result[d.name] = alias
    return result


def pynetdrv_links() -> dict[str, str]:
    """Links that look like any pynetdrv's (by alias or by name)."""
    return {name: alias for name, alias in links().items()
            if alias.startswith(ALIAS_PREFIXES) or name.startswith(LINK_PREFIXES)}


def our_links() -> dict[str, str]:
    """Links carrying the alias of the pynetdrv instance under test."""
    return {name: alias for name, alias in links().items() if alias.startswith(ALIAS_PREFIX)}


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def link_mtu(name: str) -> int:
    return int(Path("/sys/class/net", name, "mtu").read_text())


def link_master(name: str) -> str | None:
    """The bridge a port is enslaved to."""
    master = Path("/sys/class/net", name, "master")
    return master.resolve().name if master.exists() else None


def ports_of(bridge: str) -> list[str]:
    """The pnve- veths enslaved to a bridge."""
    return sorted(n for n in links() if n.startswith("pnve-") and link_master(n) == bridge)


def link_alias(name: str) -> str:
    return Path("/sys/class/net", name, "ifalias").read_text().strip()


def link_addresses(name: str) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    data = json.loads(run(["ip", "-j", "addr", "show", "dev", name]))
    return [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
            for entry in data for a in entry.get("addr_info", [])]


def netns_dirs() -> set[str]:
    """Where engines keep container netns: <exec-root>/netns (SandboxKey), i.e. /run/docker/netns
    for a default engine, and the exec-root of the engine under test (Docker 26.1 started by
    scripts/test has its own, named in $PYNETDRV_IT_EXEC_ROOT and on dockerd's command line)."""
    roots = {Path("/var/run/docker")}
    if os.environ.get("PYNETDRV_IT_EXEC_ROOT"):
        roots.add(Path(os.environ["PYNETDRV_IT_EXEC_ROOT"]))
    for pid in run(["pidof", "dockerd"], check=False).split():
        roots.add(_exec_root_of(_cmdline(int(pid))))
    return {f"{root.resolve()}/netns/" for root in roots}


def netns_entries() -> set[str]:
    """Live container network namespaces: nsfs bind mounts under <exec-root>/netns (see
    netns_dirs). dockerd unmounts a sandbox's netns at once but deletes the file only in a
    periodic GC (a minute later), so the mount, not the file, tells a live namespace.
    Namespaces under /run/netns are not ours (the netns unit tests, which may run
    concurrently, use them)."""
    dirs = tuple(netns_dirs())
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mountpoint = pre.split(" ")[4]
            if post.split(" ", 1)[0] == "nsfs" and ("/docker/netns/" in mountpoint or mountpoint.startswith(dirs)):
                found.add(mountpoint)
    return found


def host_routes() -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    routes = []
    for fam in ("-4", "-6"):
        for r in json.loads(run(["ip", "-j", fam, "route", "show", "table", "all"])):
            dst = r.get("dst")
            if not dst or dst == "default" or r.get("type") not in (None, "unicast"):
                continue
            try:
                routes.append((ipaddress.ip_network(dst, strict=False), r.get("dev", "")))
            except ValueError:
                pass
    return routes


def iptables_dump() -> str:
    parts = []
    for tool in ("iptables-save", "ip6tables-save"):
        parts.append(run([tool], check=False, timeout=30))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Subnets


class SubnetAllocator:
    """Hands out /24s from 10.231.0.0/16 .. 10.239.0.0/16 with a matching fd00:23X:0:Y::/64,
    never one that overlaps a host route or an existing docker network, never twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[ipaddress.IPv4Network] = set()
        self._candidates = (ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
                            for second in range(231, 240) for third in range(256))

    def _taken(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        taken = [net for net, _dev in host_routes()]
        for line in docker("network", "ls", "-q").split():
            for cfg in (docker_json("network", "inspect", line)[0].get("IPAM") or {}).get("Config") or []:
                try:
                    taken.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
                except ValueError:
                    pass
        return taken

    def v4(self) -> ipaddress.IPv4Network:
        with self._lock:
            taken = self._taken()
            for net in self._candidates:
                if net in self._used or any(net.overlaps(t) for t in taken if t.version == 4):
                    continue
                self._used.add(net)
                return net
        raise AssertionError("test subnets exhausted")

    @staticmethod
    def v6_for(v4: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
        second, third = v4.network_address.packed[1:3]
        return ipaddress.IPv6Network(f"fd00:{second}:0:{third:x}::/64")

    def pair(self) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
        v4 = self.v4()
        return v4, self.v6_for(v4)


# ---------------------------------------------------------------------------------------------
# Networks and containers


def bridge_name_for(network_id: str) -> str:
    return f"pnbr-{network_id[:10]}"


def veth_name_for(endpoint_id: str) -> str:
    return f"pnve-{endpoint_id[:10]}"


@dataclass
class Network:
    name: str
    id: str
    bridge: str | None  # the host bridge pynetdrv made, None for other drivers

    def inspect(self) -> dict[str, Any]:
        info: dict[str, Any] = docker_json("network", "inspect", self.id)[0]
        return info

    def ipam_configs(self) -> list[dict[str, Any]]:
        return self.inspect()["IPAM"]["Config"] or []


@dataclass
class Container:
    name: str
    result: Out | None = None  # the `docker run` output

    def inspect(self) -> dict[str, Any]:
        info: dict[str, Any] = docker_json("container", "inspect", self.name)[0]
        return info

    def networks(self) -> dict[str, dict[str, Any]]:
        return self.inspect()["NetworkSettings"]["Networks"] or {}

    def net(self, network: Network | str) -> dict[str, Any]:
        key = network.name if isinstance(network, Network) else network
        nets = self.networks()
        assert key in nets, f"{self.name} is not on {key}: {sorted(nets)}"
        return nets[key]

    def ip(self, network: Network | str) -> ipaddress.IPv4Address:
        addr = self.net(network)["IPAddress"]
        assert addr, f"{self.name} has no IPv4 address on {network}"
        return ipaddress.IPv4Address(addr)

    def ip6(self, network: Network | str) -> ipaddress.IPv6Address:
        addr = self.net(network)["GlobalIPv6Address"]
        assert addr, f"{self.name} has no IPv6 address on {network}"
        return ipaddress.IPv6Address(addr)

    def exec(self, *cmd: str, check: bool = True, timeout: float = 30) -> Out:
        return docker("exec", self.name, *cmd, check=check, timeout=timeout)

    def ifaces(self) -> set[str]:
        return set(self.exec("ls", "/sys/class/net").split())

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])


def ping(src: Container, dst: Any, *, v6: bool = False, within: float = 6) -> None:
    """src pings dst (one echo, 2 s wait), retried until `within` seconds have passed."""
    argv = ["ping6" if v6 else "ping", "-c1", "-W2", str(dst)]
    deadline = time.monotonic() + within
    while True:
        out = src.exec(*argv, check=False, timeout=15)
        if out.ok:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{src.name}: `{' '.join(argv)}` failed for {within}s:\n{out.output}")
        time.sleep(0.5)


def cleanup_docker_objects() -> list[str]:
    """Remove every container and network the tests made (by label and name prefix).
    Returns a list of problems (removal failures) instead of raising."""
    problems: list[str] = []
    ids = set(docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split())
    ids |= set(docker("ps", "-aq", "--filter", f"name={NAME_PREFIX}", check=False).split())
    nets = set(docker("network", "ls", "-q", "--filter", f"label={LABEL}", check=False).split())
    nets |= set(docker("network", "ls", "-q", "--filter", f"name={NAME_PREFIX}", check=False).split())
    nets |= set(docker("network", "ls", "-q", "--filter", f"driver={PLUGIN}", check=False).split())
    for net in nets:
        info = docker("network", "inspect", net, check=False)
        if info.ok:
            ids |= set((json.loads(info)[0].get("Containers") or {}).keys())
    ids = {i for i in ids if not i.startswith("ep-")}
    deadline = time.monotonic() + 60
    while ids:
        out = docker("rm", "-f", *sorted(ids), check=False, timeout=120)
        ids = {i for i in ids if docker("container", "inspect", i, check=False).ok}
        if ids and time.monotonic() >= deadline:
            problems.append(f"docker rm -f {' '.join(sorted(ids))} failed: {out.output}")
            break
        if ids:  # e.g. "removal of container X is already in progress"
            time.sleep(0.5)
    for net in sorted(nets):
        out = docker("network", "rm", net, check=False, timeout=60)
        if not out.ok and "No such network" not in out.stderr and "not found" not in out.stderr:
            problems.append(f"docker network rm {net} failed: {out.output}")
    return problems


def leaks(links_before: set[str], netns_before: set[str], bridges: Iterable[str],
          subnets: Iterable[str]) -> list[str]:
    """What pynetdrv (or a test) left behind on the host:
    - any link with our instance's alias (`pynetdrv-it:`);
    - any bridge the test made (by name), whatever its alias;
    - any new pnbr-/pnve-/pnvc- link or `pynetdrv:`-aliased link since the test began, unless
      it carries another instance's alias (`<other>:bridge|veth:<id>`);
    - container network namespaces still mounted that were not there before;
    - iptables/ip6tables rules naming a bridge or subnet of the test, or our instance."""
    found = []
    bridges = {b for b in bridges if b}
    for name, alias in sorted(links().items()):
        foreign = bool(re.fullmatch(r"[\w.-]+:(bridge|veth):\S+", alias)) and not alias.startswith(ALIAS_PREFIXES)
        if (alias.startswith(ALIAS_PREFIX) or name in bridges
                or (name not in links_before and not foreign
                    and (name.startswith(LINK_PREFIXES) or alias.startswith(ALIAS_PREFIXES)))):
            found.append(f"link {name} (alias {alias!r}) still exists")
    for ns in sorted(netns_entries() - netns_before):
        found.append(f"network namespace {ns} is still mounted")
    needles = [re.escape(n) for n in bridges | {s for s in subnets if s}]
    pattern = re.compile(rf"(?<![\w.:-])({'|'.join(needles)})(?![\w-])" if needles else r"(?!x)x")
    instance = re.compile(rf"--comment \"?{re.escape(PLUGIN)}(?![\w-])")
    for line in iptables_dump().splitlines():
        if line.startswith("-A") and (pattern.search(line) or instance.search(line)):
            found.append(f"iptables rule left: {line}")
    return found
