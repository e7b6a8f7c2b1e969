"""The real daemon (`python -m pynetdrv serve`) for the state-file tests, run
inside a throwaway network namespace so its reconcile, links and iptables
rules stay there; its socket and state live wherever the test says."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The socket's stem is the instance name that scopes link ownership.
SOCKET_NAME = "pynetdrv-statetest.sock"


def serve_argv(nsname: str, sock: Path, state: Path) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{nsname}", sys.executable, "-m", "pynetdrv", "serve",
            "--socket", str(sock), "--state", str(state)]


def run_to_exit(nsname: str, sock: Path, state: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """For start-ups that must fail: the whole run, which must end by itself."""
    return subprocess.run(serve_argv(nsname, sock, state), capture_output=True, text=True, timeout=timeout,
                          check=False)


def call(sock: Path, path: str, body: Any = None) -> tuple[int, Any]:
    """One plugin call on ``sock``: (HTTP status, decoded body)."""
    conn = http.client.HTTPConnection("localhost", timeout=30)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    conn.sock = s
    try:
        s.connect(str(sock))
        data = b"" if body is None else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Length": str(len(data))})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


class Daemon:
    def __init__(self, nsname: str, sock: Path, state: Path, log: Path) -> None:
        self.sock, self.state, self.log = sock, state, log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(serve_argv(nsname, sock, state), stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"pynetdrv exited {self.proc.returncode}: {log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"pynetdrv did not answer on {sock} within 30 s: {log.read_text()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            # Activate answers once the socket is bound; GetCapabilities only
            # after start-up reconcile: both mean "ready".
            return self.call("/Plugin.Activate")[0] == 200 and self.call("/NetworkDriver.GetCapabilities")[0] == 200
        except OSError:
            return False

    @property
    def pid(self) -> int:
        """The daemon's own pid (nsenter execs it, so it is the child's)."""
        return self.proc.pid

    def call(self, path: str, body: Any = None) -> tuple[int, Any]:
        return call(self.sock, path, body)

    def stop(self) -> int:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._out.close()
