"""TIME_WAIT on the host, for the published-port tests (issue 11): leave one on a port the
way a server that just served it does, and see whether the kernel holds one."""

from __future__ import annotations

import socket


def leave_time_wait(port: int) -> None:
    """A process listens on the port (SO_REUSEADDR, as servers do), a client connects, the
    server side closes first, the process exits: the server's end stays in TIME_WAIT."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=3) as client:
            accepted, _ = server.accept()
            accepted.close()
            assert client.recv(1) == b""


def time_wait_on(port: int) -> bool:
    """Does the host hold a TCP connection in TIME_WAIT whose local port is ``port``?"""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(int(r[1].split(":")[1], 16) == port and r[3] == "06" for r in rows)


def fetch_until_eof(port: int, host: str = "127.0.0.1") -> str:
    """An HTTP/1.0 GET that reads until the server closes, and only then closes: the server's
    side (for a published port on Docker's bridge, docker-proxy's) closes first, so the host
    end on ``port`` goes to TIME_WAIT, as after any real use. Returns the body ("" if none)."""
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return ""
    return data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
