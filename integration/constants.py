"""The integration suite's fixed names: the docker client and image, the plugin under test
(name, socket), dockerd's log, the label and name prefix of everything the tests create, and
the aliases/name prefixes of pynetdrv's host links."""

from __future__ import annotations

import os
from pathlib import Path

# The client of the engine under test: scripts/test points this at the engine it started
# (e.g. Docker 26.1 extracted under /opt/pynetdrv-engines); /usr/bin/docker matches Debian's.
DOCKER = os.environ.get("PYNETDRV_IT_DOCKER") or "/usr/bin/docker"
IMAGE = "local/busybox:latest"
PLUGIN = "pynetdrv-it"
PLUGIN_SOCKET = Path(f"/run/docker/plugins/{PLUGIN}.sock")
DOCKERD_LOG = Path("/var/log/pynetdrv-test-dockerd.log")
LABEL = "pynetdrv-it"  # label key on every container/network the tests create
NAME_PREFIX = "pnit-"  # prefix of every container/network name the tests create
# pynetdrv marks the links it creates with the alias "<instance>:<kind>:<id>", the instance
# being the plugin name: "pynetdrv:" for a default daemon, "pynetdrv-it:" for ours. Links of
# another instance (a developer's daemon, concurrently running tests) are not ours to judge.
ALIAS_PREFIX = f"{PLUGIN}:"
ALIAS_PREFIXES = ("pynetdrv:", ALIAS_PREFIX)
LINK_PREFIXES = ("pnbr-", "pnve-", "pnvc-")

# A container that exits at once on SIGTERM (dockerd's graceful shutdown, docker stop).
IDLE_CMD = ["sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait"]

