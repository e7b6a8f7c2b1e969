"""Minimal ``ping -c1 -W2 ADDR`` for machines without iputils-ping.

Run inside a namespace (``nsenter --net=... python icmp_ping.py ADDR``); exit
0 if an echo reply from ADDR arrives within 2 seconds.  Raw sockets: root."""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import sys
import time

TIMEOUT = 2.0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(v6: bool, ident: int) -> bytes:
    kind = 128 if v6 else 8
    payload = b"pynetdrv-test-ping"
    header = struct.pack("!BBHHH", kind, 0, 0, ident, 1)
    # The kernel fills in the ICMPv6 checksum (it covers a pseudo-header).
    csum = 0 if v6 else checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, 1) + payload


def is_reply(data: bytes, v6: bool, ident: int) -> bool:
    if not v6:
        data = data[(data[0] & 0x0F) * 4 :]  # IPv4 raw sockets include the IP header
    if len(data) < 8:
        return False
    kind, _, _, rid, _ = struct.unpack("!BBHHH", data[:8])
    return kind == (129 if v6 else 0) and rid == ident


def main(addr: str) -> int:
    target = ipaddress.ip_address(addr)
    v6 = target.version == 6
    family, proto = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    )
    ident = os.getpid() & 0xFFFF
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        sock.sendto(echo_request(v6, ident), (addr, 0))
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, src = sock.recvfrom(4096)
            if ipaddress.ip_address(src[0]) == target and is_reply(data, v6, ident):
                return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
