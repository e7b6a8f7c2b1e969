"""The state lock, the command line and DefaultPool parsing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import netaddr
import pytest

import pynetdrv
from pynetdrv.cli import main
from pynetdrv.config import DefaultPool
from pynetdrv.lock import AlreadyRunning, StateLock

# StateLock -------------------------------------------------------------------------------

def test_second_acquire_names_pid_and_state(tmp_path: Path) -> None:
    state = tmp_path / "sub" / "state.db"
    first = StateLock(state)
    first.acquire()
    try:
        assert first.path.exists()
        with pytest.raises(AlreadyRunning) as e:
            StateLock(state).acquire()
        msg = str(e.value)
        assert f"pid {os.getpid()}" in msg
        assert str(state) in msg
    finally:
        first.release()


def test_released_lock_can_be_reacquired(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    a = StateLock(state)
    a.acquire()
    a.release()
    b = StateLock(state)
    b.acquire()
    b.release()
    a.acquire()
    a.release()
    a.release()  # releasing twice is harmless


def test_different_state_files_do_not_block_each_other(tmp_path: Path) -> None:
    a, b = StateLock(tmp_path / "a.db"), StateLock(tmp_path / "b.db")
    a.acquire()
    b.acquire()
    a.release()
    b.release()


def test_lock_held_by_another_process_names_it_and_dies_with_it(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from pynetdrv.lock import StateLock
        StateLock(Path({str(state)!r})).acquire()
        print("locked", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning, match=f"pid {child.pid}\\b"):
            StateLock(state).acquire()
        child.kill()  # SIGKILL: the kernel drops the flock with the process
        child.wait(timeout=10)
        mine = StateLock(state)
        mine.acquire()
        mine.release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        child.stdout.close()


# CLI -------------------------------------------------------------------------------------

def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pynetdrv", *args], check=False, capture_output=True,
                          text=True, timeout=timeout)


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"pynetdrv {pynetdrv.__version__}"
    assert pynetdrv.__version__.count(".") >= 1


def test_cli_rejects_a_bad_default_pool_with_exit_2(tmp_path: Path) -> None:
    proc = run_cli("serve", "--state", str(tmp_path / "s.db"), "--socket", str(tmp_path / "p.sock"),
                   "--default-pool", "base=10.200.0.1/13,size=24")
    assert proc.returncode == 2
    assert "10.200.0.1/13" in proc.stderr and "--default-pool" in proc.stderr
    assert not (tmp_path / "p.sock").exists() and not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("argv", [
    [], ["serve", "--log-level", "loud"], ["serve", "--default-pool", "size=24"], ["nonsense"],
    ["serve", "--firewall-check-interval", "-1"], ["serve", "--firewall-check-interval", "soon"],
])
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "usage: pynetdrv" in capsys.readouterr().err


#: `serve` refuses to start as non-root before it looks at the state (test_security_startup).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="serve runs as root only")


@needs_root
def test_cli_exits_1_when_another_daemon_holds_the_state(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    lock = StateLock(state)
    lock.acquire()
    try:
        proc = run_cli("serve", "--state", str(state), "--socket", str(tmp_path / "p.sock"), timeout=30)
    finally:
        lock.release()
    assert proc.returncode == 1
    assert f"pid {os.getpid()}" in proc.stderr and "already running" in proc.stderr
    assert not (tmp_path / "p.sock").exists()


@needs_root
def test_cli_exits_1_naming_a_corrupt_state_file(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    state.write_bytes(b"not an sqlite database, just some text " * 4)
    proc = run_cli("serve", "--state", str(state), "--socket", str(tmp_path / "p.sock"))
    assert proc.returncode == 1, proc.stderr
    assert str(state) in proc.stderr and "not an SQLite database" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "p.sock").exists()


# DefaultPool -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "base", "size"), [
    ("base=10.200.0.0/13,size=24", "10.200.0.0/13", 24),
    ("size=20,base=172.30.0.0/16", "172.30.0.0/16", 20),
    ("base=fd70:6e64::/32,size=64", "fd70:6e64::/32", 64),
    ("base=10.9.0.0/24,size=24", "10.9.0.0/24", 24),
    ("base=10.9.0.0/24,size=32", "10.9.0.0/24", 32),
])
def test_default_pool_parse_good(text: str, base: str, size: int) -> None:
    pool = DefaultPool.parse(text)
    assert pool.base == netaddr.IPNetwork(base) and pool.size == size


@pytest.mark.parametrize("text", [
    "",
    "base=10.200.0.0/13",
    "size=24",
    "base=10.200.0.1/13,size=24",      # host bits
    "base=10.200.0.0/13,size=12",      # bigger than the base
    "base=10.200.0.0/13,size=33",
    "base=fd70::/32,size=129",
    "base=banana,size=24",
    "base=10.200.0.0/13,size=abc",
    "base=10.200.0.0/13,size=24,color=red",
    "base=10.200.0.0/13,size=24,junk",  # a stray token is a typo, not something to ignore
])
def test_default_pool_parse_bad(text: str) -> None:
    with pytest.raises(ValueError) as e:
        DefaultPool.parse(text)
    assert repr(text) in str(e.value) or text in str(e.value)


def test_log_level_debug_is_pynetdrvs_own_and_libraries_say_only_warnings() -> None:
    """pyroute2's debug output (every netlink message) made each plugin call tens of ms slower."""
    code = ("import logging; from pynetdrv.cli import configure_logging; configure_logging('debug'); "
            "logging.getLogger('pynetdrv.driver').debug('ours'); logging.getLogger('pyroute2.netlink').debug('noise'); "
            "logging.getLogger('grpc._cython').info('noise'); logging.getLogger('pyroute2').warning('theirs')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG pynetdrv.driver: ours" in proc.stderr
    assert "WARNING pyroute2: theirs" in proc.stderr
    assert "noise" not in proc.stderr
