"""A real etcd for the tests: fetched once from Debian, one per pytest-xdist worker.

`ensure_etcd_binary()` unpacks bookworm's etcd-server (`apt-get download` + `dpkg -x`, never
`apt-get install`: its postinst starts a service) into /opt/pynetdrv-engines/etcd-<version>/, once,
under a lock, so parallel workers and later runs share it. `EtcdServer` runs one etcd on its own
loopback port pair with a 0700 data dir, an environment without ETCD_* variables (etcd reads each as
a flag), killed by the kernel if the test process dies (setpriv --pdeathsig KILL), and stopped with
SIGTERM. It can be stopped and started again on the same ports and data (the restart tests).
`TlsMaterial` makes a throwaway CA, a server certificate and a client certificate with openssl.

The test harness talks to etcd over its HTTP/JSON gateway (urllib): health checks and the clean-up of
a test's key prefix never depend on the client under test nor on an event loop.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ENGINES_DIR = Path("/opt/pynetdrv-engines")
ETCD_VERSION = "3.4.23"  # Debian bookworm's etcd-server
ETCD_DIR = ENGINES_DIR / f"etcd-{ETCD_VERSION}"
ETCD_BIN = ETCD_DIR / "root/usr/bin/etcd"
# A harness override (a different etcd binary); deliberately not named ETCD_*.
BIN_OVERRIDE_ENV = "PYNETDRV_TEST_ETCD_BIN"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class EtcdHarnessError(RuntimeError):
    """The test etcd could not be fetched, started or reached (a harness failure, never a skip)."""


def ensure_etcd_binary() -> Path:
    """The path of an etcd binary: the override, or bookworm's etcd-server unpacked once (cached)."""
    override = os.environ.get(BIN_OVERRIDE_ENV)
    if override:
        return Path(override)
    if (ETCD_DIR / ".complete").exists():
        return ETCD_BIN
    ENGINES_DIR.mkdir(parents=True, exist_ok=True)
    with open(ENGINES_DIR / ".etcd-fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker fetches, the others wait and reuse it
        if not (ETCD_DIR / ".complete").exists():
            _fetch_and_unpack()
    return ETCD_BIN


def _fetch_and_unpack() -> None:
    with tempfile.TemporaryDirectory(prefix="etcd-deb-") as tmp:
        r = subprocess.run(["apt-get", "-qq", "download", "etcd-server"], check=False, cwd=tmp,
                           capture_output=True, text=True)
        debs = list(Path(tmp).glob("etcd-server_*.deb"))
        if r.returncode != 0 or not debs:
            raise EtcdHarnessError(
                f"could not fetch Debian's etcd-server with `apt-get download etcd-server` "
                f"(exit {r.returncode}): {r.stderr.strip() or r.stdout.strip()}; "
                f"run `apt-get update` or set {BIN_OVERRIDE_ENV} to an etcd binary"
            )
        deb = debs[0]
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        if not version.startswith(ETCD_VERSION):
            raise EtcdHarnessError(f"apt offers etcd-server {version}, the tests expect {ETCD_VERSION}")
        staging = ETCD_DIR.with_name(ETCD_DIR.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "root").mkdir(parents=True)
        subprocess.run(["dpkg", "-x", str(deb), str(staging / "root")], check=True)
        r = subprocess.run([str(staging / "root/usr/bin/etcd"), "--version"], check=False, capture_output=True,
                           text=True)
        if r.returncode != 0 or ETCD_VERSION not in r.stdout:
            raise EtcdHarnessError(f"the unpacked etcd does not run: {r.stdout} {r.stderr}")
        (staging / ".complete").write_text(f"etcd-server={version}\n")
        shutil.rmtree(ETCD_DIR, ignore_errors=True)
        staging.rename(ETCD_DIR)


def _port_range() -> range:
    """Where test etcds listen: below the kernel's ephemeral range, so that no outgoing connection
    (gRPC's, the HTTP gateway's, another worker's) can hold a port etcd must bind again on restart."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), max(1025, low))


def _free_port() -> int:
    """A port in `_port_range()` that nothing listens on now (etcd's --name check catches a race)."""
    ports = _port_range()
    for _ in range(200):
        port = random.choice(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise EtcdHarnessError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


@dataclass(frozen=True)
class TlsMaterial:
    """A throwaway CA with a server certificate (127.0.0.1, localhost) and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, d: Path) -> TlsMaterial:
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)

        def openssl(*args: str) -> None:
            r = subprocess.run(["openssl", *args], check=False, cwd=d, capture_output=True, text=True)
            if r.returncode != 0:
                raise EtcdHarnessError(f"openssl {' '.join(args)}: {r.stderr}")

        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pynetdrv test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        for name, cn, ext in (
            # etcd's own HTTP gateway dials etcd with the server certificate: it needs clientAuth too.
            ("server", "etcd", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"),
            ("client", "pynetdrv", "extendedKeyUsage=clientAuth"),
        ):
            (d / f"{name}.ext").write_text(ext + "\n")
            openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
        return cls(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


class EtcdServer:
    """One etcd process on 127.0.0.1: start, stop (SIGTERM), start again on the same ports and data."""

    def __init__(self, binary: Path, workdir: Path, name: str, tls: TlsMaterial | None = None) -> None:
        self.binary = binary
        self.name = name
        # etcd's member name, unique to this process and start: `_wait_ready` asks the etcd that
        # answers on our port for it, so that another run's etcd there is never taken for ours.
        self.member = f"{name}-{os.getpid()}-{secrets.token_hex(3)}"
        self.tls = tls
        self.data_dir = workdir / "data"
        self.log_path = workdir / "etcd.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.client_port = 0
        self.peer_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoint(self) -> str:
        """HOST:PORT of the client listener (what follows etcd:// in pynetdrv's --store)."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start etcd and wait until /health says true; on a first start, pick a free port pair."""
        if self.running:
            return
        fresh = self.client_port == 0
        for attempt in range(3):
            if fresh:
                self.client_port, self.peer_port = _free_port(), _free_port()
            self._spawn()
            try:
                self._wait_ready()
                return
            except EtcdHarnessError:
                self._kill()
                # A port taken between picking and binding: pick again (first start only).
                if not fresh or attempt == 2:
                    raise

    def _spawn(self) -> None:
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700)
        os.chmod(self.data_dir, 0o700)
        curl = f"{self.scheme}://127.0.0.1:{self.client_port}"
        purl = f"http://127.0.0.1:{self.peer_port}"
        args = [
            str(self.binary), "--name", self.member, "--data-dir", str(self.data_dir),
            "--logger", "zap", "--log-level", "warn",
            "--listen-client-urls", curl, "--advertise-client-urls", curl,
            "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
            "--initial-cluster", f"{self.member}={purl}", "--initial-cluster-state", "new",
        ]
        if self.tls:
            args += ["--client-cert-auth", "--trusted-ca-file", str(self.tls.ca),
                     "--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", *args], env=env,
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise EtcdHarnessError(f"etcd exited ({self._proc and self._proc.returncode}): {self.log_tail()}")
            try:
                if json.loads(self.http("GET", "/health")).get("health") == "true":
                    members = json.loads(self.http("POST", "/v3/cluster/member/list", {})).get("members", [])
                    names = [str(m.get("name", "")) for m in members]
                    if names == [self.member]:
                        return
                    # Another etcd on our port (ours could not bind it): never use it as ours.
                    raise EtcdHarnessError(f"port {self.client_port} answers as etcd {names}, not {self.member}")
            except (OSError, ValueError) as e:
                last = str(e)
            time.sleep(0.05)
        raise EtcdHarnessError(f"etcd not healthy after {READY_TIMEOUT_S} s ({last}): {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit in time). Idempotent."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)  # a paused etcd would not act on SIGTERM
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._kill()
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: etcd hangs (accepts nothing, answers nothing) until `resume`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        # The signal is delivered asynchronously: wait until every thread of etcd is stopped.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            states = []
            for stat in Path(f"/proc/{self._proc.pid}/task").glob("*/stat"):
                with contextlib.suppress(OSError):
                    states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            if states and all(st in ("T", "t") for st in states):
                return
            time.sleep(0.01)
        raise EtcdHarnessError("etcd did not stop on SIGSTOP")

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- the harness's own access, over the HTTP/JSON gateway --------------------------------------
    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def http(self, method: str, path: str, body: dict[str, object] | None = None) -> str:
        url = f"{self.scheme}://127.0.0.1:{self.client_port}{path}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        with urllib.request.urlopen(req, timeout=2, context=self._ssl_context()) as resp:
            return str(resp.read().decode())

    def delete_prefix(self, prefix: bytes) -> None:
        end = bytearray(prefix)
        end[-1] += 1
        self.http("POST", "/v3/kv/deleterange", {"key": base64.b64encode(prefix).decode(),
                                                   "range_end": base64.b64encode(bytes(end)).decode()})

    def compact(self, revision: int) -> None:
        """Drop the history before `revision` (pynetdrv itself never compacts)."""
        self.http("POST", "/v3/kv/compaction", {"revision": str(revision), "physical": True})

    def count_prefix(self, prefix: bytes) -> int:
        end = bytearray(prefix)
        end[-1] += 1
        out = json.loads(self.http("POST", "/v3/kv/range", {
            "key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(bytes(end)).decode(),
            "count_only": True}))
        return int(out.get("count", 0))

