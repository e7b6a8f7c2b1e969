"""A pynetdrv daemon of the checkout run for a benchmark, and a client that talks to its socket
the way dockerd does (HTTP POST over the unix socket, keep-alive connections)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PLUGIN_CONTENT = "application/vnd.docker.plugins.v1.2+json"


class PluginError(RuntimeError):
    pass


class PluginClient:
    """Async plugin-protocol client on one unix socket: HTTP/1.1 POSTs on a pool of keep-alive
    connections, as dockerd's Go client does.  Hand-written on asyncio streams so that the client's
    own cost stays small next to the daemon's (aiohttp's client costs about as much per call as the
    server does, which would hide half of what we measure)."""

    def __init__(self, socket_path: Path, connections: int = 32) -> None:
        self._path = str(socket_path)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(connections)

    async def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"POST /{path} HTTP/1.1\r\nHost: plugin\r\nAccept: {PLUGIN_CONTENT}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        async with self._slots:
            conn = self._idle.pop() if self._idle else await asyncio.open_unix_connection(self._path)
            reader, writer = conn
            try:
                writer.write(head + data)
                status_line = await reader.readuntil(b"\r\n")
                length = 0
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                text = (await reader.readexactly(length)).decode()
            except BaseException:
                writer.close()
                raise
            self._idle.append(conn)
        status = int(status_line.split()[1])
        if status != 200:
            raise PluginError(f"{path} -> {status}: {text.strip()}")
        return json.loads(text) if text.strip() else {}

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


#: Answered as soon as the socket is bound (what dockerd waits for to register the plugin).
ACTIVATE = ("Plugin.Activate", b"Implements")
#: Answered only once start-up reconcile is done (every call but Activate waits for it).
SERVING = ("NetworkDriver.GetCapabilities", b"Scope")


def answers(socket_path: Path, call: tuple[str, bytes] = ACTIVATE) -> bool:
    """One blocking POST of ``call`` on a new connection (stdlib only, no event loop): True if
    it answered 200 with its expected field."""
    import socket

    path, field = call
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(str(socket_path))
        s.sendall(b"POST /%s HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n" % path.encode())
        reply = b""
        while b"\r\n\r\n" not in reply or field not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply.startswith(b"HTTP/1.1 200") and field in reply
    except OSError:
        return False
    finally:
        s.close()


def activates(socket_path: Path) -> bool:
    return answers(socket_path, ACTIVATE)


class Daemon:
    """``python -m pynetdrv serve`` of this checkout with its own socket and state file."""

    def __init__(self, socket_path: Path, state_path: Path, log_path: Path) -> None:
        self.socket_path = socket_path
        self.state_path = state_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> float:
        """Start the process; returns the perf_counter just before the fork."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        # setpriv (util-linux) sets the parent-death signal, then execs pynetdrv (same pid): if
        # the process that started it dies (a worker killed at its time limit), the daemon gets
        # SIGTERM instead of running on as an orphan.  The exec adds ~1 ms to a cold start.
        argv = ["setpriv", "--pdeathsig", "TERM", "--",
                sys.executable, "-m", "pynetdrv", "serve", "--socket", str(self.socket_path),
                "--state", str(self.state_path), "--log-level", "warning"]
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return t0

    def wait_ready(self, timeout: float = 60, poll: float = 0.002, call: tuple[str, bytes] = ACTIVATE) -> float:
        """Poll ``call`` until it answers; returns the perf_counter of the first answer."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout
        while True:
            if self.socket_path.exists() and answers(self.socket_path, call):
                return time.perf_counter()
            if self.proc.poll() is not None:
                raise RuntimeError(f"pynetdrv exited with {self.proc.returncode}; log: {self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"pynetdrv did not answer within {timeout} s; log: {self.log_tail()}")
            time.sleep(poll)

    def start(self) -> float:
        """Start and wait until it serves every call (reconcile done); returns seconds from
        spawn to that answer."""
        return self.start_timed()[1]

    def start_timed(self) -> tuple[float, float]:
        """Start; returns seconds from spawn to the first answer (Activate) and to serving
        every call (GetCapabilities, after reconcile)."""
        t0 = self.spawn()
        first = self.wait_ready() - t0
        return first, self.wait_ready(call=SERVING) - t0

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS for the daemon")

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds the daemon has used so far, all threads."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


async def wait_all(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws))


def new_id() -> str:
    """A random 64-hex id like Docker's (veth names use its first 10 hex, so ids must differ there)."""
    return secrets.token_hex(32)
