"""The pynetdrv daemon under test: PynetdrvDaemon (start/stop/restart `python -m pynetdrv
serve`), talking to its plugin socket like dockerd does, and finding an aborted run's leftover
daemons."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

#: How often the test daemon compares its firewall with its state and repairs it.
FIREWALL_CHECK_SECONDS = 2

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


def plugin_ready(sock_path: Path | str) -> bool:
    """Activate answers as soon as the socket is bound; every other call waits
    until start-up reconcile is done, so a GetCapabilities answer means ready."""
    if not plugin_activates(sock_path):
        return False
    try:
        return plugin_call(sock_path, "/NetworkDriver.GetCapabilities", timeout=2)[0] == 200
    except OSError:
        return False


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
                "--state", str(self.state_path), "--log-level", "debug",
                # Short, so a test can watch the repair of a flushed ruleset.
                "--firewall-check-interval", str(FIREWALL_CHECK_SECONDS)]

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
        while not plugin_ready(self.socket_path):
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
                raise AssertionError(
                    f"pynetdrv did not exit within {timeout}s of {signal.Signals(sig).name}") from None
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
