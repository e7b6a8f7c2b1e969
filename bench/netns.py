"""Throwaway network namespaces for the benchmarks that need no dockerd."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "pynetdrv-bench-"


@contextmanager
def throwaway_netns() -> Iterator[str]:
    """A new namespace with loopback up; deleted (with every link in it) afterwards."""
    name = PREFIX + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def leftovers() -> list[str]:
    """Namespaces an aborted earlier run left behind."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]
