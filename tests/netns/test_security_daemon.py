"""The running daemon's attack surface, checked on the real process (in a
throwaway network namespace): its socket, state, WAL and lock files belong to
root and are closed to other users; it has no TCP or UDP socket at all; run
as another user it refuses with one line; a state file owned by another user
is refused unchanged; a symlink planted as its lock file is not followed."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from as_user import NOBODY, run_as
from state_daemon import SOCKET_NAME, Daemon, run_to_exit

from pynetdrv import cli


@pytest.fixture
def daemon(nsname: str, tmp_path: Path) -> Iterator[Daemon]:
    # A state directory that does not exist yet: pynetdrv creates it.
    d = Daemon(nsname, tmp_path / SOCKET_NAME, tmp_path / "lib" / "pynetdrv" / "state.db", tmp_path / "log")
    try:
        yield d
    finally:
        assert d.stop() == 0


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_socket_and_state_files_are_roots_and_closed_to_others(daemon: Daemon) -> None:
    body = {"NetworkID": "ab" * 32, "Options": {},
            "IPv4Data": [{"AddressSpace": "local", "Pool": "10.228.60.0/24", "Gateway": "10.228.60.1/24"}]}
    assert daemon.call("/NetworkDriver.CreateNetwork", body)[0] == 200  # so the WAL exists
    assert stat.S_ISSOCK(os.lstat(daemon.sock).st_mode)
    assert mode_owner(daemon.sock) == (0o660, 0, 0)
    state = daemon.state
    for f in (state, Path(f"{state}-wal"), Path(f"{state}-shm"), Path(f"{state}.lock")):
        assert mode_owner(f) == (0o600, 0, 0), f
    assert mode_owner(state.parent) == (0o700, 0, 0)
    assert daemon.call("/NetworkDriver.DeleteNetwork", {"NetworkID": "ab" * 32})[0] == 200


def inet_socket_inodes(pid: int) -> dict[str, set[int]]:
    """Inodes of the TCP/UDP sockets in the pid's network namespace, by table,
    and 'listen' for TCP sockets in LISTEN state (st 0A)."""
    tables: dict[str, set[int]] = {"listen": set(), "all": set()}
    for name in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            inode = int(fields[9])
            tables["all"].add(inode)
            if name.startswith("tcp") and fields[3] == "0A":
                tables["listen"].add(inode)
    return tables


def fd_socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_daemon_has_no_tcp_or_udp_socket(daemon: Daemon, nsname: str) -> None:
    mine = fd_socket_inodes(daemon.pid)
    assert mine, "the daemon holds its unix socket at least"
    unix = Path(f"/proc/{daemon.pid}/net/unix").read_text()
    assert str(daemon.sock) in unix
    tables = inet_socket_inodes(daemon.pid)
    assert mine & tables["listen"] == set()
    assert mine & tables["all"] == set()


def test_the_listener_check_sees_a_real_listener(nsname: str) -> None:
    """Control for the check above: a process listening on TCP in the same
    kind of namespace is seen by the same code."""
    code = ("import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print('up', flush=True); sys.stdin.read()")
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{nsname}", sys.executable, "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert fd_socket_inodes(proc.pid) & inet_socket_inodes(proc.pid)["listen"]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()


@pytest.fixture
def nobodys_dir() -> Iterator[Path]:
    """A directory user nobody can reach and write (mode 0700, owned by nobody, in /tmp):
    whatever nobody's process creates before its root check would land here."""
    work = Path(tempfile.mkdtemp(prefix="pynetdrv-nobody-", dir="/tmp"))
    try:
        os.chown(work, NOBODY, NOBODY)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_nobody_can_write_in_its_dir(nobodys_dir: Path) -> None:
    """Control for the test below: nobody's process could create files there."""
    probe = nobodys_dir / "probe"
    assert run_as(NOBODY, NOBODY, lambda: probe.touch() or 0).returncode == 0
    assert probe.exists() and os.stat(probe).st_uid == NOBODY


def test_serve_as_non_root_is_one_line_and_exit_1(nobodys_dir: Path) -> None:
    """`pynetdrv serve` run by uid 65534: the CLI's entry point (what `python -m pynetdrv`
    runs), in a process that really is nobody, wherever the checkout is."""
    sock, state = nobodys_dir / "x.sock", nobodys_dir / "state.db"
    proc = run_as(NOBODY, NOBODY, lambda: cli.main(["serve", "--socket", str(sock), "--state", str(state)]))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "must run as root" in lines[0] and f"uid {NOBODY}" in lines[0], proc.stderr
    assert os.listdir(nobodys_dir) == [], "nothing may be created before the check"


def test_state_file_owned_by_another_user_is_refused(nsname: str, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = Daemon(nsname, tmp_path / SOCKET_NAME, state, tmp_path / "log")
    assert first.stop() == 0
    os.chown(state, NOBODY, NOBODY)
    digest = hashlib.sha256(state.read_bytes()).hexdigest()
    proc = run_to_exit(nsname, tmp_path / SOCKET_NAME, state)
    assert proc.returncode == 1
    assert f"state file {state} is owned by uid {NOBODY}" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert hashlib.sha256(state.read_bytes()).hexdigest() == digest and os.stat(state).st_uid == NOBODY


def test_planted_lock_symlink_is_not_followed(nsname: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state = tmp_path / "state.db"
    Path(f"{state}.lock").symlink_to(victim)
    proc = run_to_exit(nsname, tmp_path / SOCKET_NAME, state)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert f"{state}.lock" in proc.stderr
    assert victim.read_text() == "precious\n"
    assert not state.exists()


def connect_as_client(sock: Path) -> int:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(sock))
    except PermissionError:
        print("refused")
    else:
        print("connected")
    finally:
        s.close()
    return 0


def test_the_socket_refuses_a_non_root_client(nsname: str, tmp_path: Path) -> None:
    """0660 root:root: another user cannot even connect, though the socket's
    directory lets everyone through (as /run/docker/plugins does)."""
    rundir = Path(tempfile.mkdtemp(prefix="pynetdrv-sectest-", dir="/run"))
    try:
        os.chmod(rundir, 0o711)
        d = Daemon(nsname, rundir / SOCKET_NAME, tmp_path / "state.db", tmp_path / "log")
        try:
            proc = run_as(NOBODY, NOBODY, lambda: connect_as_client(d.sock))
            assert proc.stdout.strip() == "refused", (proc.stdout, proc.stderr)
            assert d.call("/Plugin.Activate")[0] == 200  # and root can
        finally:
            assert d.stop() == 0
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
