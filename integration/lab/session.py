"""The lab for one test module: brought up (after a crashed earlier run's lab is removed), the test
image imported into every host's dockerd, and torn down even when a test fails, the hosts' logs
copied first (down removes /var/lib/pnlab) to LOGS/<engine>/hN/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from integration.busybox_image import ensure_busybox_image
from integration.lab import lab
from integration.lab.topology import DATA_DIR, HOSTS


def lab_for_module(logs: Path, mode: str = "cluster", setup: Callable[[], None] = lambda: None) -> Iterator[None]:
    """setup: what the module needs on top (networks...), run once the lab is up; torn down with it."""
    lab.down()
    try:
        lab.up(mode=mode)
        for host in HOSTS:
            ensure_busybox_image(host.client, say=lambda s: None)
        setup()
        yield
    finally:
        keep_logs(logs)
        lab.down()


def keep_logs(logs: Path) -> None:
    target = logs / (os.environ.get("PYNETDRV_IT_ENGINE") or "default")
    shutil.rmtree(target, ignore_errors=True)
    for log in DATA_DIR.glob("h*/*.log"):
        (target / log.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(log, target / log.parent.name / log.name)
