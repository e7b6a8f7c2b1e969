"""Which of this host's container addresses belong to a container that dockerd starts again
after its own restart, and which do not: ``address -> Holder``, from the Engine API (see
``watch``).  Saved as JSON next to the state file (``state.db`` -> ``state.restarts.json``),
written whole and renamed into place, so a reboot finds the record of before it.

It is a cache of what Docker said, not state of ours: missing, unreadable or malformed, it is
an empty record (every address unknown), and the watch writes it again."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Restart policies under which dockerd starts a container again when it starts itself
#: (``unless-stopped`` only if it was running: a stopped container holds no address here).
COMES_BACK = frozenset({"always", "unless-stopped", "on-failure"})


@dataclass(frozen=True)
class Holder:
    """The container holding an address: its ID, name and restart policy (Docker's name for it)."""

    container: str
    name: str
    policy: str

    @property
    def comes_back(self) -> bool:
        return self.policy in COMES_BACK


def record_path(state: Path) -> Path:
    return state.with_suffix(".restarts.json")


def load(path: Path) -> dict[str, Holder]:
    try:
        raw = json.loads(path.read_text())
        return {str(a): Holder(str(h["container"]), str(h["name"]), str(h["policy"]))
                for a, h in raw["addresses"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("restart record %s unreadable (%s): every address counts as unknown until Docker is read "
                    "again", path, e)
        return {}


def save(path: Path, holders: Mapping[str, Holder]) -> None:
    """Atomically: the new record whole, or the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = {"addresses": {a: asdict(h) for a, h in sorted(holders.items())}}
    try:
        with open(tmp, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
