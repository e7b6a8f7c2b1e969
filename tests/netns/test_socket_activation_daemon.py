"""The real `pynetdrv serve` started by systemd's own `systemd-socket-activate`
(the Debian package systemd): the socket it passes is served as it is, calls
made before start-up reconcile finished wait and are answered, READY=1 and
STOPPING=1 reach the NOTIFY_SOCKET, and the socket file is still there after
the daemon stopped.  Unusable passed sockets are refused with one line.

The daemon runs in a throwaway network namespace (its reconcile, links and
iptables rules stay there); its socket, state and notify socket live in a
short per-test directory, removed afterwards."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from state_daemon import call

ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
#: Its stem is the instance name that scopes link ownership in the namespace.
SOCKET_NAME = "pynetdrv-sdact.sock"


@pytest.fixture
def rundir() -> Iterator[Path]:
    """Short (sun_path is 108 bytes), this test's only, removed even on failure."""
    path = Path(f"/run/pndt-sdact-{secrets.token_hex(4)}")
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def notify_socket(rundir: Path) -> Iterator[socket.socket]:
    """A NOTIFY_SOCKET as systemd has one: a datagram socket we read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(rundir / "notify"))
    try:
        yield sock
    finally:
        sock.close()


def activated_argv(nsname: str, listen: list[str], serve_args: list[str], env: dict[str, str],
                   datagram: bool = False) -> list[str]:
    """nsenter execs systemd-socket-activate, which binds the sockets and execs
    python in the same process: LISTEN_PID is the daemon's pid.  Only TERM,
    PATH, USER and HOME pass through systemd-socket-activate: the rest by -E."""
    argv = ["nsenter", f"--net=/run/netns/{nsname}", ACTIVATE]
    argv += [f"--listen={addr}" for addr in listen]
    argv += ["--datagram"] if datagram else []
    argv += [f"--setenv={k}={v}" for k, v in env.items()]
    return [*argv, sys.executable, "-m", "pynetdrv", "serve", *serve_args]


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"exited {proc.returncode} before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def call_when_listening(sock: Path, path: str, timeout: float = 20) -> tuple[int, Any]:
    """The file appears at bind(), a moment before listen(): retry a refused connect."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(sock, path)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def received(sock: socket.socket, timeout: float) -> list[str]:
    """Every datagram that arrives within ``timeout``."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


def wait_for_message(sock: socket.socket, wanted: str, timeout: float = 30) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted} within {timeout} s; got {seen}"
        sock.settimeout(left)
        seen.append(sock.recv(4096).decode())
    return seen


def test_serve_adopts_the_passed_socket_and_tells_systemd(nsname: str, rundir: Path,
                                                          notify_socket: socket.socket) -> None:
    sock_path, log_path = rundir / SOCKET_NAME, rundir / "serve.log"
    env = {"NOTIFY_SOCKET": str(rundir / "notify"), "PYTHONUNBUFFERED": "1"}
    argv = activated_argv(nsname, [str(sock_path)], ["--state", str(rundir / "state.db"), "--log-level", "info"],
                          env)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(sock_path, proc)
        inode = os.stat(sock_path).st_ino
        # The socket exists before the daemon has even imported: a call made
        # now is queued by the kernel, then held at the gate until reconcile.
        notify_socket.setblocking(False)
        with pytest.raises(BlockingIOError):
            notify_socket.recv(4096)  # no READY=1 yet when the call goes out
        status, body = call_when_listening(sock_path, "/NetworkDriver.GetCapabilities")
        assert status == 200 and body["Scope"] == "local", body
        assert wait_for_message(notify_socket, "READY=1")[-1] == "READY=1"
        assert call(sock_path, "/Plugin.Activate") == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        assert os.stat(sock_path).st_ino == inode, "the passed socket was served, not a new one bound"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
        assert "STOPPING=1" in received(notify_socket, 2.0)
        assert sock_path.exists() and os.stat(sock_path).st_ino == inode, "the socket unit's file must stay"
        text = log_path.read_text()
        assert f"listening on {sock_path}: the socket passed by systemd" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


#: What systemd-socket-activate itself says on stderr.
LAUNCHER_LINES = ("Listening on ", "Communication attempt on fd ", "Execing ")


def run_refused(argv: list[str], first: Path, datagram: bool) -> tuple[int, list[str]]:
    """Like systemd, systemd-socket-activate starts the program on the first
    connection: make one.  The exit status and what pynetdrv said on stderr."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(first, proc)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM) as s:
            if datagram:
                s.sendto(b"wake up", str(first))
            else:
                deadline = time.monotonic() + 20
                while s.connect_ex(str(first)) != 0:
                    assert time.monotonic() < deadline, f"could not connect to {first}"
                    time.sleep(0.02)
            _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    return proc.returncode, [line for line in err.splitlines() if not line.startswith(LAUNCHER_LINES)]


@pytest.mark.parametrize(("listen", "datagram", "extra", "says"), [
    (["a.sock", "b.sock"], False, [], "passed 2 unix stream sockets"),
    (["a.sock"], True, [], "but no unix stream socket"),
    (["a.sock"], False, ["--socket", "/run/other/x.sock"], "--socket /run/other/x.sock but socket activation passed"),
], ids=["several", "datagram-only", "other-socket-flag"])
def test_unusable_passed_sockets_are_refused_with_one_line(
        nsname: str, rundir: Path, listen: list[str], datagram: bool, extra: list[str], says: str) -> None:
    state = rundir / "state.db"
    argv = activated_argv(nsname, [str(rundir / name) for name in listen], ["--state", str(state), *extra], {},
                          datagram=datagram)
    status, lines = run_refused(argv, rundir / listen[0], datagram)
    assert status == 1, lines
    assert len(lines) == 1 and lines[0].startswith("pynetdrv: ") and says in lines[0], lines
    assert not state.exists(), "refused before the state file was touched"
    for name in listen:
        assert (rundir / name).exists(), "the passed sockets are systemd's: left alone"


def test_listen_pid_of_another_process_is_ignored(nsname: str, rundir: Path) -> None:
    """Variables inherited from a parent that was socket-activated: serve binds its own socket."""
    sock_path, log_path = rundir / SOCKET_NAME, rundir / "serve.log"
    env = {**os.environ, "LISTEN_PID": "1", "LISTEN_FDS": "1", "PYTHONUNBUFFERED": "1"}
    argv = ["nsenter", f"--net=/run/netns/{nsname}", sys.executable, "-m", "pynetdrv", "serve",
            "--socket", str(sock_path), "--state", str(rundir / "state.db")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(sock_path, proc)
        assert call_when_listening(sock_path, "/NetworkDriver.GetCapabilities")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
        assert not sock_path.exists(), "a socket it bound itself is removed on stop"
        assert f"listening on {sock_path}: bound by pynetdrv" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
