"""Where the managed (v2) plugin keeps its socket and state, inside the plugin
(plugin/config.json): shared by its entrypoint (managed_plugin), which serves
there, and by plugin_paths, which finds them from the host.  Its own module
so that finding them does not import the entrypoint (which runs the CLI)."""

from __future__ import annotations

from pathlib import Path

#: Where dockerd looks for the socket: /run/docker/plugins/<interface.socket>
#: inside the plugin (plugin/config.json).  Its stem is the instance name that
#: scopes pynetdrv's link aliases and iptables chains, distinct from a legacy
#: daemon's ``pynetdrv`` on the same host.
PLUGIN_SOCKET = Path("/run/docker/plugins/pynetdrv-plugin.sock")
#: The state directory: a host bind mount (mounts: state), so it outlives upgrades.
PLUGIN_STATE_DIR = Path("/var/lib/pynetdrv-plugin")
PLUGIN_STORE = f"sqlite:{PLUGIN_STATE_DIR}/state.db"
