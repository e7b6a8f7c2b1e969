"""``python -m bench.multihost_probe ADDRESS TIMEOUT``, run inside a container's network namespace
(``nsenter -t PID -n``): ICMP echo requests to ADDRESS every 10 ms until the first reply.

Prints ``ready`` once it can send, then ``reply T`` (T = CLOCK_MONOTONIC, the same clock in every
process of the machine, so the caller subtracts its own start time) or ``timeout``.  Before that it
lowers the namespace's ARP retransmit time on eth0 to 10 ms: the address does not exist yet when
probing starts, and with the kernel's default (1 s between ARP probes of an unresolved address) the
figure would measure that retry period instead of when the network can first deliver."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path

INTERVAL = 0.01
ARP_RETRANS = Path("/proc/sys/net/ipv4/neigh/eth0/retrans_time_ms")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


def echo_request(ident: int, seq: int) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    payload = b"pynetdrv-bench"
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def is_reply(packet: bytes, ident: int) -> bool:
    """An IPv4 packet (as a raw ICMP socket hands it over) holding an echo reply to ``ident``."""
    if len(packet) < 20:
        return False
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return False
    kind, _code, _sum, got = struct.unpack("!BBHH", packet[ihl:ihl + 6])
    return bool(kind == 0 and got == ident)


def probe(address: str, timeout: float) -> float | None:
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.setblocking(False)
        print("ready", flush=True)
        deadline = time.monotonic() + timeout
        seq = 0
        while time.monotonic() < deadline:
            seq = (seq + 1) & 0xFFFF
            with contextlib.suppress(OSError):  # EHOSTUNREACH once the ARP entry failed: keep trying
                sock.sendto(echo_request(ident, seq), (address, 0))
            until = time.monotonic() + INTERVAL
            while (left := until - time.monotonic()) > 0:
                if select.select([sock], [], [], left)[0]:
                    packet, peer = sock.recvfrom(2048)
                    if peer[0] == address and is_reply(packet, ident):
                        return time.monotonic()
    return None


def parse_output(text: str) -> float | None:
    """The monotonic time of the first reply from the probe's output, None if it timed out."""
    for line in text.splitlines():
        word, _, value = line.strip().partition(" ")
        if word == "reply":
            return float(value)
        if word == "timeout":
            return None
    raise ValueError(f"probe output has neither a reply nor a timeout: {text!r}")


def main(argv: list[str]) -> int:
    address, timeout = argv[0], float(argv[1])
    ARP_RETRANS.write_text("10\n")
    reached = probe(address, timeout)
    print("timeout" if reached is None else f"reply {reached:.6f}", flush=True)
    return 0 if reached is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
