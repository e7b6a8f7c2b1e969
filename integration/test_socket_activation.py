"""dockerd uses a network on a socket-activated pynetdrv: systemd's own
`systemd-socket-activate` (what pynetdrv.socket does at boot) binds the
plugin socket and starts `pynetdrv serve` on dockerd's first call; serve
adopts that socket, and containers on its network reach each other.

The session's pynetdrv-it daemon is stopped for the test and started again
afterwards, against the same state file (so the fixtures' cleanup and leak
checks work as for every test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from integration.cmd import wait_for
from integration.constants import PLUGIN_SOCKET
from integration.docker_objects import ping
from integration.pynetdrv_daemon import FIREWALL_CHECK_SECONDS

ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_docker_uses_a_network_on_a_socket_activated_pynetdrv(pynetdrv, make_network, make_container, subnets,
                                                               tmp_path):
    pynetdrv.stop()
    assert not PLUGIN_SOCKET.exists(), "the session daemon removes the socket it bound"
    log_path = tmp_path / "activated.log"
    # --socket names the same path as the passed socket (accepted), so an
    # aborted run's daemon is found by integration.pynetdrv_daemon.leftover_daemons.
    argv = [ACTIVATE, f"--listen={PLUGIN_SOCKET}", sys.executable, "-m", "pynetdrv", "serve",
            "--socket", str(PLUGIN_SOCKET), "--state", str(pynetdrv.state_path), "--log-level", "debug",
            "--firewall-check-interval", str(FIREWALL_CHECK_SECONDS)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(PLUGIN_SOCKET.exists, 20, f"systemd-socket-activate to bind {PLUGIN_SOCKET}")
        inode = os.stat(PLUGIN_SOCKET).st_ino
        assert comm(proc.pid) == "systemd-socket-", "pynetdrv starts on the first connection, not before"

        sub = subnets.v4()
        net = make_network("--subnet", str(sub))  # dockerd's calls start pynetdrv
        c1, c2 = make_container(net), make_container(net)
        ip1, ip2 = c1.ip(net), c2.ip(net)
        assert ip1 in sub and ip2 in sub and ip1 != ip2
        ping(c1, ip2)
        ping(c2, ip1)

        assert comm(proc.pid).startswith("python"), "systemd-socket-activate execs pynetdrv in its place"
        assert os.stat(PLUGIN_SOCKET).st_ino == inode, "pynetdrv served the passed socket, it did not bind one"
        text = log_path.read_text()
        assert f"listening on {PLUGIN_SOCKET}: the socket passed by systemd" in text, text[-3000:]

        proc.terminate()
        assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
        assert PLUGIN_SOCKET.exists() and os.stat(PLUGIN_SOCKET).st_ino == inode, "the socket file is systemd's"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        # The session daemon again, on the same state: it removes the
        # leftover socket file and binds its own; the fixtures' cleanup
        # (the network, the containers) goes through it.
        pynetdrv.start()
