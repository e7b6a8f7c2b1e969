"""pynetdrv.systemd: sd_listen_fds and sd_notify without libsystemd.

The fd passing is tested for real: a launcher puts a socket at fd 3 and execs
a small program that takes it with listen_fds(), and so does systemd's own
systemd-socket-activate (Debian package systemd)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pynetdrv.systemd import ListenSocket, activated_unix_socket, listen_fds, notify, serving_socket, unix_listener

HERE = Path(__file__).resolve().parent
CHILD = HERE / "activation_child.py"
LAUNCHER = HERE / "fd3_launcher.py"
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}


def _ask(path: Path, timeout: float = 20) -> dict[str, object]:
    """Connect to the activated program (retrying while it is not there yet) and read its answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(str(path))
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                result: dict[str, object] = json.loads(data)
                return result
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_no_activation_without_listen_pid() -> None:
    env = {"LISTEN_FDS": "1"}
    assert listen_fds(env) == []
    assert env == {}, "the variables are removed in every case"


def test_variables_meant_for_another_process_are_ignored() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert listen_fds(env, unset_environment=False) == []
    assert env["LISTEN_FDS"] == "2", "unset_environment=False leaves them"


@pytest.mark.parametrize(("env", "named"), [
    ({"LISTEN_PID": "x1"}, "LISTEN_PID"),
    ({"LISTEN_FDS": "one"}, "LISTEN_FDS"),
    ({"LISTEN_FDS": "-1"}, "LISTEN_FDS"),
    ({"LISTEN_FDS": "2", "LISTEN_FDNAMES": "only-one"}, "LISTEN_FDNAMES"),
])
def test_malformed_variables_are_named(env: dict[str, str], named: str) -> None:
    env.setdefault("LISTEN_PID", str(os.getpid()))
    with pytest.raises(ValueError, match=named):
        listen_fds(env)
    assert not [k for k in env if k.startswith("LISTEN_")]


def test_zero_fds_is_no_socket() -> None:
    assert listen_fds({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}) == []


def test_a_socket_passed_at_fd_3_is_served(tmp_path: Path) -> None:
    path = tmp_path / "act.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen()
        fd = listener.fileno()
        proc = subprocess.Popen([sys.executable, str(LAUNCHER), str(fd), "pynetdrv.socket", sys.executable, str(CHILD)],
                                pass_fds=(fd,), env=ENV, stderr=subprocess.PIPE, text=True)
        try:
            answer = _ask(path)
        finally:
            _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert answer == {"names": ["pynetdrv.socket"], "left": [], "inheritable": [False], "fds": [3]}


def test_a_passed_fd_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run([sys.executable, str(LAUNCHER), str(read_end), "x", sys.executable, str(CHILD)],
                              pass_fds=(read_end,), env=ENV, capture_output=True, text=True, timeout=30, check=False)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert proc.returncode != 0
    assert "passed fd 3 (LISTEN_FDS=1) is not a usable socket" in proc.stderr


def test_systemd_socket_activate_starts_a_program_that_takes_the_socket(tmp_path: Path) -> None:
    tool = shutil.which("systemd-socket-activate")
    assert tool, "systemd-socket-activate is missing: apt-get install systemd (the package, not the init)"
    path = tmp_path / "pynetdrv.sock"
    proc = subprocess.Popen([tool, "-l", str(path), "--fdname=pynetdrv", sys.executable, str(CHILD)],
                            env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        answer = _ask(path)  # the first connection starts the program
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert answer["names"] == ["pynetdrv"]
    assert answer["left"] == []
    assert answer["fds"] == [3]


def test_unix_listener_picks_the_one_unix_stream_socket() -> None:
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        assert unix_listener([ListenSocket(dgram, "d"), ListenSocket(stream, "s")]) is stream
        assert unix_listener([ListenSocket(dgram, "d")]) is None
        assert unix_listener([]) is None
    finally:
        stream.close()
        dgram.close()


def test_two_unix_stream_sockets_are_ambiguous() -> None:
    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with pytest.raises(ValueError, match="2 unix stream sockets"):
            unix_listener([ListenSocket(a, "a"), ListenSocket(b, "b")])
    finally:
        a.close()
        b.close()


def test_notify_without_a_manager_does_nothing() -> None:
    assert notify("READY=1", {}) is False


def test_notify_sends_one_datagram_to_a_path(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.settimeout(5)
        assert notify("READY=1", {"NOTIFY_SOCKET": str(path)}) is True
        assert manager.recv(4096) == b"READY=1"


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"pynetdrv-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        manager.settimeout(5)
        assert notify("STATUS=reconciled\nREADY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert manager.recv(4096) == b"STATUS=reconciled\nREADY=1"


def test_notify_names_a_bad_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NOTIFY_SOCKET='relative/path'"):
        notify("READY=1", {"NOTIFY_SOCKET": "relative/path"})
    with pytest.raises(OSError):
        notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})


# --- which passed socket serve takes (serving_socket) -------------------------------


def _unix(tmp_path: Path, name: str, kind: int = socket.SOCK_STREAM, listen: bool = True) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(str(tmp_path / name))
    if listen and kind == socket.SOCK_STREAM:
        s.listen()
    return s


def test_serving_socket_takes_the_listening_unix_stream_socket_and_closes_the_rest(tmp_path: Path) -> None:
    stream, dgram = _unix(tmp_path, "s.sock"), _unix(tmp_path, "d.sock", socket.SOCK_DGRAM)
    try:
        chosen = serving_socket([ListenSocket(dgram, "d"), ListenSocket(stream, "s")])
        assert chosen is stream and stream.fileno() >= 0
        assert dgram.fileno() == -1, "the socket serve does not use is closed"
    finally:
        stream.close()
        dgram.close()


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: [_unix(p, "d.sock", socket.SOCK_DGRAM)],
     r"passed 1 fd\(s\) \(fd \d+: AF_UNIX SOCK_DGRAM\) but no unix stream"),
    (lambda p: [_unix(p, "a.sock"), _unix(p, "b.sock")], "passed 2 unix stream sockets"),
    (lambda p: [_unix(p, "n.sock", listen=False)], "unix stream socket that is not listening"),
    (lambda p: [_abstract()], "unix socket without a file path"),
], ids=["datagram-only", "several", "not-listening", "abstract"])
def test_serving_socket_refuses_what_serve_cannot_use(tmp_path: Path, make: Any, says: str) -> None:
    sockets = make(tmp_path)
    try:
        with pytest.raises(ValueError, match=says):
            serving_socket([ListenSocket(s, "x") for s in sockets])
        assert all(s.fileno() == -1 for s in sockets), "all closed on refusal"
    finally:
        for s in sockets:
            s.close()


def _abstract() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0pynetdrv-test-" + secrets.token_hex(6))
    s.listen()
    return s


def test_no_activation_means_no_socket() -> None:
    assert activated_unix_socket({"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}) is None
    assert activated_unix_socket({}) is None
