"""A tiny server and client for traffic tests, run inside a namespace with
``nsenter --net=... python peer_io.py ...``.

    peer_io.py serve tcp|udp|http ADDR PORT TOKEN   answer every connection,
                                        datagram or GET with "TOKEN PEER-IP"
    peer_io.py ask tcp|udp|http ADDR PORT   print the answer; exit 1 if none
                                        came within 2 s

Also used by the integration tests (the outside host, and a UDP server in a
container that borrows the host's Python).
"""

from __future__ import annotations

import socket
import sys

TIMEOUT = 2.0


def serve(proto: str, addr: str, port: int, token: str) -> None:
    if proto == "http":
        serve_http(addr, port, token)
        return
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        print("ready", flush=True)
        if proto == "tcp":
            s.listen()
            while True:
                conn, peer = s.accept()
                with conn:
                    conn.sendall(f"{token} {peer[0]}".encode())
        while True:
            _, peer = s.recvfrom(2048)
            s.sendto(f"{token} {peer[0]}".encode(), peer)


def serve_http(addr: str, port: int, token: str) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{token} {self.client_address[0]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((addr, port), Handler)
    print("ready", flush=True)
    server.serve_forever()


def ask(proto: str, addr: str, port: int) -> int:
    if proto == "http":
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{addr}:{port}/", timeout=TIMEOUT) as reply:
                print(reply.read().decode().strip())
            return 0
        except OSError as e:
            print(f"no answer: {e}", file=sys.stderr)
            return 1
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(TIMEOUT)
        try:
            if proto == "tcp":
                s.connect((addr, port))
                data = s.recv(2048)
            else:
                s.sendto(b"hello", (addr, port))
                data, _ = s.recvfrom(2048)
        except OSError as e:
            print(f"no answer: {e}", file=sys.stderr)
            return 1
    print(data.decode())
    return 0 if data else 1


if __name__ == "__main__":
    cmd, proto, addr, port = sys.argv[1:5]
    if cmd == "serve":
        serve(proto, addr, int(port), sys.argv[5])
    else:
        sys.exit(ask(proto, addr, int(port)))
