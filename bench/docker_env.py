"""The dockerd side of the benchmarks: the shared integration lock, dockerd and the images
(through the integration suite's engine helpers), iperf3, and a pynetdrv daemon in the host namespace that dockerd
finds as the ``pynetdrv-bench`` plugin."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
LOCK = Path("/run/lock/pynetdrv-integration.lock")
BUSYBOX = "local/busybox:latest"
IPERF_IMAGE = "local/pynetdrv-bench-iperf3:latest"
PLUGIN = "pynetdrv-bench"
PLUGIN_SOCKET = Path(f"/run/docker/plugins/{PLUGIN}.sock")
#: Object names all start with this, so a later run can remove an aborted run's leftovers.
PREFIX = "pynetdrv-bench"


class LockBusy(RuntimeError):
    pass


@contextmanager
def integration_lock(timeout: float) -> Iterator[None]:
    """Hold the lock the integration tests take while they drive dockerd (they restart it)."""
    if os.environ.get("PYNETDRV_IT_LOCK_HELD"):
        yield  # a caller (scripts/test) holds it for us
        return
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockBusy(f"{LOCK} stayed busy for {timeout:.0f} s (an integration run holds it)") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def ensure_engine() -> str:
    """dockerd running (started if not) and the busybox image there; returns the engine version."""
    from integration.busybox_image import ensure_busybox_image
    from integration.engines import ensure_system_dockerd

    def quiet(_text: str) -> None:
        pass

    ensure_system_dockerd(quiet)
    ensure_busybox_image(Path(DOCKER), quiet)
    return docker("version", "--format", "{{.Server.Version}}")


def remove_leftovers() -> None:
    """Containers and networks of an aborted earlier run (names start with PREFIX)."""
    ids = docker("ps", "-aq", "--filter", f"name={PREFIX}")
    if ids:
        docker("rm", "-f", *ids.split())
    for name in docker("network", "ls", "--format", "{{.Name}}").split():
        if name.startswith(PREFIX):
            docker("network", "rm", name)


def ensure_iperf3() -> str:
    """The Debian iperf3 binary (installed with apt if missing)."""
    exe = shutil.which("iperf3")
    if exe:
        return exe
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "iperf3"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    exe = shutil.which("iperf3")
    if not exe:
        raise RuntimeError("apt-get installed iperf3 but it is not on PATH")
    return exe


def _libraries(exe: str) -> list[str]:
    out = subprocess.run(["ldd", exe], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def ensure_iperf_image(client: str = DOCKER) -> None:
    """An image holding only the host's iperf3 and the libraries it links (imported, no registry),
    in the engine ``client`` talks to (the lab's hosts have one client each)."""
    if subprocess.run([client, "image", "inspect", IPERF_IMAGE], capture_output=True, check=False).returncode == 0:
        return
    exe = ensure_iperf3()
    with tempfile.TemporaryDirectory(prefix="pynetdrv-bench-img-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for d in ("tmp", "etc"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            for path in [exe, *_libraries(exe)]:
                tar.add(os.path.realpath(path), arcname=path.lstrip("/"))
        with open(tar_path, "rb") as f:
            subprocess.run([client, "import", "-c", 'ENTRYPOINT ["/usr/bin/iperf3"]', "-", IPERF_IMAGE],
                           stdin=f, check=True, capture_output=True, timeout=120)
