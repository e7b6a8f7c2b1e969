"""What ``pynetdrv serve`` imports on its way to the socket (benchmark 5, cold
start).  Not a timing test: it checks which modules get loaded, in a fresh
interpreter, so that an import added at the top of a serving module that
drags in ``pynetdrv check``'s machinery fails here instead of silently
costing every daemon start."""

from __future__ import annotations

import json
import subprocess
import sys

from pynetdrv.check import docker_view
from pynetdrv.config import DEFAULT_DOCKER_SOCKET

#: What the daemon process imports before it serves (see cli._serve_command).
SERVE_PATH = "import pynetdrv.cli, pynetdrv.server"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_serve_path_does_not_import_check_or_status() -> None:
    loaded = _modules_after(SERVE_PATH)
    assert "pynetdrv.server" in loaded  # the probe itself worked
    off_path = sorted(m for m in loaded if m.startswith(("pynetdrv.check", "pynetdrv.status")))
    assert off_path == [], f"serving imports {off_path}; import them where they are used"


#: What serve() imports before its socket answers /Plugin.Activate (see server.serve).
BEFORE_SOCKET = SERVE_PATH + ", pynetdrv.store.sqlite"


def test_the_socket_is_bound_before_pyroute2_pydantic_and_the_services_are_imported() -> None:
    """They are imported in a worker thread while Activate is already answered."""
    loaded = _modules_after(BEFORE_SOCKET)
    assert "pynetdrv.store.sqlite" in loaded
    later = sorted(m for m in loaded if m.split(".")[0] in ("pyroute2", "pydantic", "pydantic_core")
                   or m.startswith(("pynetdrv.dataplane.netlink", "pynetdrv.driver", "pynetdrv.ipam.service",
                                    "pynetdrv.reconcile", "pynetdrv.firewall.iptables", "pynetdrv.api.ipam_models",
                                    "pynetdrv.api.network_models")))
    assert later == [], f"imported before the socket is bound: {later}"


def test_docker_socket_default_is_the_same_in_cli_and_check() -> None:
    assert DEFAULT_DOCKER_SOCKET == docker_view.DEFAULT_DOCKER_SOCKET
