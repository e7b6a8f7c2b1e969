"""etcd 3.4 (Debian's etcd-server, fetched by the etcd unit tests' helper) in host 1's netns,
clients on its underlay address :2379 (and its loopback), peers on its loopback only."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import ModuleType

from integration.engines import BASE_PATH, spawn_detached
from integration.lab.topology import ETCD_CLIENT_PORT, ETCD_HOST, NETNS_DIR, HostSpec, LabError, in_ns

_HELPER = Path(__file__).resolve().parents[2] / "tests" / "unit" / "etcd" / "etcd_server.py"
READY_TIMEOUT = 20


def _helper() -> ModuleType:
    """tests/unit/etcd/etcd_server.py (not a package): its ensure_etcd_binary() fetches etcd once."""
    spec = importlib.util.spec_from_file_location("pnlab_etcd_server", _HELPER)
    if spec is None or spec.loader is None:
        raise LabError(f"cannot load {_HELPER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def client_url(host: HostSpec = ETCD_HOST) -> str:
    return f"http://{host.address}:{ETCD_CLIENT_PORT}"


def reachable_from(host: HostSpec, timeout: float = 3) -> bool:
    """Does etcd's /health answer healthy to a client in `host`'s netns (over the underlay)?"""
    code = (f"import urllib.request,sys; r=urllib.request.urlopen('{client_url()}/health', timeout={timeout}); "
            "sys.stdout.write(r.read().decode())")
    r = in_ns(host.netns, sys.executable, "-c", code, check=False, timeout=timeout + 10)
    try:
        return r.returncode == 0 and json.loads(r.stdout).get("health") == "true"
    except ValueError:
        return False


def start_etcd() -> None:
    if reachable_from(ETCD_HOST):
        return
    binary = _helper().ensure_etcd_binary()
    data = ETCD_HOST.data_dir / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    curls = f"{client_url()},http://127.0.0.1:{ETCD_CLIENT_PORT}"
    purl = "http://127.0.0.1:2380"
    argv = ["nsenter", f"--net={NETNS_DIR / ETCD_HOST.netns}", str(binary), "--name", "pnlab",
            "--data-dir", str(data), "--logger", "zap", "--log-level", "warn",
            "--listen-client-urls", curls, "--advertise-client-urls", client_url(),
            "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
            "--initial-cluster", f"pnlab={purl}", "--initial-cluster-state", "new"]
    spawn_detached(argv, {"PATH": BASE_PATH, "HOME": "/root"}, ETCD_HOST.data_dir / "etcd.log")
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if reachable_from(ETCD_HOST):
            return
        time.sleep(0.3)
    raise LabError(f"etcd in {ETCD_HOST.netns} not healthy after {READY_TIMEOUT}s (log: {data.parent}/etcd.log)")


def etcd_pid() -> int | None:
    """The lab's etcd: the process named etcd in h1's netns."""
    ino = os.stat(NETNS_DIR / ETCD_HOST.netns).st_ino
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino == ino and os.path.basename(
                    (entry / "cmdline").read_bytes().split(b"\0")[0].decode()) == "etcd":
                return int(entry.name)
        except (OSError, UnicodeDecodeError):
            continue
    return None


def stop_etcd(timeout: float = 10) -> None:
    """SIGTERM the lab's etcd and wait until it is gone (etcd down for every host)."""
    pid = etcd_pid()
    if pid is None:
        raise LabError("etcd is not running in h1")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while etcd_pid() == pid:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
