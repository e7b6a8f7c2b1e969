"""``python3 -m bench``: bootstrap (root, ./.venv with the ``bench`` extra), then ``bench.cli``.

Runs with any python3 from the repository root: the first step only uses the standard library,
creates or updates ./.venv (scripts/lib-venv.sh, then ``pip install -e '.[bench]'``) and
re-executes itself with the venv's python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PY = REPO / ".venv" / "bin" / "python"
NEEDED = "import pynetdrv, aiohttp, pyroute2, matplotlib"


def _venv_ready() -> bool:
    return subprocess.run([str(VENV_PY), "-c", NEEDED], capture_output=True, check=False).returncode == 0


def bootstrap() -> None:
    if os.geteuid() != 0:
        sys.exit("python -m bench: must run as root (network namespaces, iptables, dockerd)")
    if Path(sys.prefix).resolve() == (REPO / ".venv").resolve() and _venv_ready():
        return
    if os.environ.get("PYNETDRV_BENCH_REEXEC"):
        sys.exit(f"python -m bench: {VENV_PY} cannot import what the benchmarks need ({NEEDED})")
    subprocess.run(["bash", "-c", "source scripts/lib-venv.sh && ensure_venv bench"], cwd=REPO, check=True)
    if not _venv_ready():  # ensure_venv only checks for pynetdrv when the stamp is current
        print("==> venv: pip install -e '.[bench]'", flush=True)
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", ".[bench]"],
                       cwd=REPO, check=True)
    os.environ["PYNETDRV_BENCH_REEXEC"] = "1"
    os.chdir(REPO)
    os.execv(str(VENV_PY), [str(VENV_PY), "-m", "bench", *sys.argv[1:]])


if __name__ == "__main__":
    bootstrap()
    from bench.cli import main

    sys.exit(main())
