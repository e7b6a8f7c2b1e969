"""up / status / down of the whole lab."""

from __future__ import annotations

import shutil
from pathlib import Path

from integration.lab import etcd
from integration.lab.host import (
    cgroup_dirs,
    engine_bins,
    health,
    host_mode,
    host_pids,
    lab_mode,
    remove_cgroups,
    start_host,
    stop_host,
)
from integration.lab.topology import (
    DATA_DIR,
    HOSTS,
    RUN_DIR,
    SWITCH_NS,
    build_underlay,
    lab_namespaces,
    remove_underlay,
    run,
)


def up(engine: str | None = None, mode: str | None = None) -> None:
    """Build what is missing; a failure leaves things for `down` (which handles any partial lab).
    etcd first: in cluster mode every pynetdrv needs it to start."""
    engine_bins(engine)  # a bad engine or mode name fails here, before anything is built
    mode = lab_mode(mode)
    build_underlay()
    etcd.start_etcd()
    for host in HOSTS:
        start_host(host, engine, mode)


def status() -> tuple[bool, list[str]]:
    lines = [f"switch {SWITCH_NS}: {'present' if SWITCH_NS in lab_namespaces() else 'MISSING'}"]
    ok = SWITCH_NS in lab_namespaces()
    for host in HOSTS:
        parts = health(host) if host.netns in lab_namespaces() else {"dockerd": False, "pynetdrv": False}
        # etcd runs in h1; every host must reach it over the underlay
        parts["etcd"] = host.netns in lab_namespaces() and etcd.reachable_from(host)
        ok = ok and all(parts.values())
        flags = " ".join(f"{k}={'ok' if v else 'DOWN'}" for k, v in parts.items())
        mode = host_mode(host) if host.data_dir.exists() else "-"
        lines.append(f"{host.name} netns={host.netns} underlay={host.address} mode={mode} {flags} "
                     f"client: {host.client}")
    return ok, lines


def lab_mounts() -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith((str(RUN_DIR), str(DATA_DIR))):
            found.append(point)
    return found


def down() -> list[str]:
    """Remove everything the lab made, whatever state it is in. Returns what could not be removed."""
    problems: list[str] = []
    for host in HOSTS:
        problems += stop_host(host)
        problems += remove_cgroups(host)
    for point in sorted(lab_mounts(), reverse=True):
        run("umount", "-l", point, check=False)
    problems += remove_underlay()
    for d in (RUN_DIR, DATA_DIR):
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            problems.append(f"{d} still exists")
    problems += [f"mount {m} left" for m in lab_mounts()]
    problems += [f"cgroup {d} left" for h in HOSTS for d in cgroup_dirs(h)]
    problems += [f"{h.name}: pid {p} left" for h in HOSTS for p in host_pids(h)]
    return problems
