"""The cluster settings a running daemon was started with, recorded next to its state file so that
``pynetdrv status`` and ``pynetdrv check`` find etcd without the user repeating ``--store etcd://...``.

Only locations are recorded (the etcd URL, the advertise address, the VXLAN port and the PATHS of
the TLS files), never a key or certificate's content.  The file is ``<state>.cluster.json``: written
(atomically) at every cluster-mode start, removed at a one-host start, so it never outlives the mode.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClusterSettings:
    etcd: str
    advertise_address: str
    vxlan_port: int = 4789
    etcd_cacert: str | None = None
    etcd_cert: str | None = None
    etcd_key: str | None = None


def settings_path(state: Path) -> Path:
    return state.with_name(state.name + ".cluster.json")


def save_settings(state: Path, settings: ClusterSettings | None) -> None:
    """Record ``settings`` next to ``state`` (None: one-host mode, forget any old record)."""
    path = settings_path(state)
    if settings is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(settings), sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_settings(state: Path) -> ClusterSettings | None:
    """The recorded settings, None if there are none.  ValueError names the file if it is unreadable."""
    path = settings_path(state)
    try:
        d = json.loads(path.read_text())
        return ClusterSettings(
            etcd=str(d["etcd"]), advertise_address=str(d["advertise_address"]), vxlan_port=int(d["vxlan_port"]),
            etcd_cacert=d.get("etcd_cacert"), etcd_cert=d.get("etcd_cert"), etcd_key=d.get("etcd_key"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cluster settings {path} unreadable: {e}") from None


#: How long status and check wait for etcd before showing the local view alone (seconds).
ETCD_WAIT_S = 3.0


def with_overrides(recorded: ClusterSettings | None, etcd: str | None, cacert: Path | None, cert: Path | None,
                   key: Path | None) -> ClusterSettings | None:
    """The recorded settings with what the user gave on the command line (``--store etcd://``,
    ``--etcd-*``) taking precedence; None: not cluster mode."""
    if etcd is None and recorded is None:
        return None
    base = recorded or ClusterSettings(etcd or "", "")
    tls = [None if p is None else str(p) for p in (cacert, cert, key)]
    return ClusterSettings(etcd or base.etcd, base.advertise_address, base.vxlan_port,
                           tls[0] or base.etcd_cacert, tls[1] or base.etcd_cert, tls[2] or base.etcd_key)


def resolve_settings(state: Path, etcd: str | None, cacert: Path | None, cert: Path | None,
                     key: Path | None) -> ClusterSettings | None:
    """status/check: the daemon's recorded settings, overridden by the command line's.  ValueError
    names an unreadable record."""
    return with_overrides(load_settings(state), etcd, cacert, cert, key)
