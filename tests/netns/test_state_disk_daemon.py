"""The real daemon against bad state files and bad state disks.

Start-up: a corrupt, truncated, empty, foreign or newer-schema state file, or
a read-only or full state directory, makes `pynetdrv serve` exit 1 with ONE
line on stderr naming the file and the problem, creates no socket, and leaves
the file byte for byte as it was (sha256 before/after).

Running: the state tmpfs filled to the last byte makes CreateNetwork fail
with an Err naming the state file, leaves no bridge in the kernel, and the
same call works once space returns; SIGTERM then stops it with status 0."""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from state_daemon import SOCKET_NAME, Daemon, run_to_exit
from state_disk import dump, fill, small_tmpfs

from pynetdrv.store.sqlite_file import APPLICATION_ID
from pynetdrv.store.sqlite_schema import MIGRATIONS


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pynetdrv_file(path: Path, networks: int = 30) -> None:
    """A real state file with data, written by the daemon's own store code."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pynetdrv.store.sqlite import SQLiteStore
        from pynetdrv.store.base import PoolRecord
        async def main():
            s = SQLiteStore(sys.argv[1])
            await s.open()
            for i in range({networks}):
                await s.add_pool(PoolRecord(f"local/10.228.{{i}}.0/24", "local", f"10.228.{{i}}.0/24"))
            await s.close()
        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(11).randbytes(32768))


def empty(path: Path) -> None:
    path.touch()


def truncated(path: Path) -> None:
    pynetdrv_file(path)
    os.truncate(path, path.stat().st_size // 2)


def foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos VALUES (1, 'x');")
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()


def newer(path: Path) -> None:
    pynetdrv_file(path, networks=2)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    conn.commit()
    conn.close()


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "random-bytes": (random_bytes, "is not an SQLite database"),
    "empty": (empty, "is empty (0 bytes)"),
    "truncated": (truncated, "is truncated"),
    "foreign": (foreign, "another application"),
    "newer-schema": (newer, f"schema version {len(MIGRATIONS) + 3}"),
}


def assert_one_line_refusal(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_state_file_refused_unchanged(kind: str, nsname: str, tmp_path: Path) -> None:
    make, problem = BAD_FILES[kind]
    state, sock = tmp_path / "state.db", tmp_path / SOCKET_NAME
    make(state)
    before = sha256(state), state.stat().st_mtime_ns
    assert_one_line_refusal(run_to_exit(nsname, sock, state), f"state file {state}", problem, "left unchanged")
    assert (sha256(state), state.stat().st_mtime_ns) == before
    assert not sock.exists()
    assert not Path(f"{state}-wal").exists() and not Path(f"{state}.new").exists()


def test_v1_file_without_application_id_is_served_and_stamped(nsname: str, tmp_path: Path) -> None:
    state, sock = tmp_path / "state.db", tmp_path / SOCKET_NAME
    pynetdrv_file(state, networks=3)
    conn = sqlite3.connect(state)
    conn.execute("PRAGMA application_id = 0")
    conn.commit()
    conn.close()
    daemon = Daemon(nsname, sock, state, tmp_path / "log")
    try:
        status, reply = daemon.call("/IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.228.1.0/24"})
        assert status == 500 and "overlaps pool 10.228.1.0/24" in reply["Err"]  # the old pools are known
    finally:
        assert daemon.stop() == 0
    conn = sqlite3.connect(state)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    with small_tmpfs("2m") as mountpoint:
        yield mountpoint


def test_read_only_state_directory_refused_at_start(tmpfs: Path, nsname: str, tmp_path: Path) -> None:
    state = tmpfs / "state.db"
    pynetdrv_file(state)
    before = sha256(state)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True, timeout=30)
    line = assert_one_line_refusal(run_to_exit(nsname, tmp_path / SOCKET_NAME, state), str(state))
    assert "Read-only file system" in line or "read-only" in line, line
    assert sha256(state) == before and not (tmp_path / SOCKET_NAME).exists()


def test_full_state_directory_refused_at_start(tmpfs: Path, nsname: str, tmp_path: Path) -> None:
    fill(tmpfs)
    line = assert_one_line_refusal(run_to_exit(nsname, tmp_path / SOCKET_NAME, tmpfs / "state.db"),
                                   str(tmpfs / "state.db"))
    assert "No space left on device" in line or "full" in line, line
    assert not (tmpfs / "state.db").exists() and not (tmp_path / SOCKET_NAME).exists()


def test_daemon_full_disk_fails_cleanly_and_resumes(tmpfs: Path, nsname: str, tmp_path: Path) -> None:
    state, sock = tmpfs / "state.db", tmp_path / SOCKET_NAME
    daemon = Daemon(nsname, sock, state, tmp_path / "log")
    try:
        nid = secrets.token_hex(32)
        body = {"NetworkID": nid, "Options": {"com.docker.network.generic": {}},
                "IPv4Data": [{"AddressSpace": "local", "Pool": "10.228.40.0/24", "Gateway": "10.228.40.1/24"}]}
        assert daemon.call("/IpamDriver.RequestPool", {"Pool": "10.228.40.0/24"})[0] == 200
        before = dump(state)
        filler = fill(tmpfs)
        status, reply = daemon.call("/NetworkDriver.CreateNetwork", body)
        assert status == 500 and f"state file {state}" in reply["Err"] and "full" in reply["Err"], reply
        links = subprocess.run(["ip", "-n", nsname, "-o", "link"], capture_output=True, text=True, check=True)
        assert f"pnbr-{nid[:10]}" not in links.stdout
        assert dump(state) == before
        assert daemon.call("/Plugin.Activate")[0] == 200, "the daemon must keep answering"
        filler.unlink()
        assert daemon.call("/NetworkDriver.CreateNetwork", body)[0] == 200
        links = subprocess.run(["ip", "-n", nsname, "-o", "link"], capture_output=True, text=True, check=True)
        assert f"pnbr-{nid[:10]}" in links.stdout
        assert daemon.call("/NetworkDriver.DeleteNetwork", {"NetworkID": nid})[0] == 200
    finally:
        assert daemon.stop() == 0
    assert not sock.exists()
