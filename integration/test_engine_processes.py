"""An engine's processes are found by its exec root (never by name alone), and ending them
ends the containers' processes too: what engine stops and the tests' teardown rely on to
leave no containerd-shim behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from integration.cmd import wait_for
from integration.constants import IMAGE
from integration.docker_objects import docker
from integration.dockerd import exec_root_of, running_dockerd, start_dockerd
from integration.engine_processes import engine_processes, orphan_shims, reap
from integration.faults import kill_dockerd
from integration.processes import children_of, pid_gone

# A process that looks like a shim (argv[0] and flags) and has a child, like a container's.
FAKE_SHIM = "sleep 300 & wait"


def _fake_shim(exec_root: Path, container_id: str) -> subprocess.Popen[bytes]:
    argv = ["bash", "-c", 'exec -a containerd-shim-runc-v2 "$@"', "bash", "bash", "-c", FAKE_SHIM, "fake-shim",
            "-namespace", "moby", "-id", container_id, "-address", f"{exec_root}/containerd/containerd.sock"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    wait_for(lambda: children_of(proc.pid), 10, f"fake shim {proc.pid} to start its child")
    return proc


@pytest.mark.once
def test_reap_ends_one_engines_shims_and_their_children_only(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    shim = _fake_shim(ours, "a" * 64)
    other = _fake_shim(theirs, "b" * 64)
    try:
        found = engine_processes(ours)
        assert [(p.pid, p.kind, p.container_id) for p in found] == [(shim.pid, "shim", "a" * 64)]
        assert orphan_shims(ours, {"a" * 64}) == []
        assert [p.pid for p in orphan_shims(ours, set())] == [shim.pid]
        kids = children_of(shim.pid)
        assert reap(found) == []
        assert all(pid_gone(p) for p in [shim.pid, *kids]), f"shim {shim.pid} or its child {kids} survived"
        assert not pid_gone(other.pid), "the other engine's shim was ended"
        assert engine_processes(ours) == []
    finally:
        for proc in (shim, other):
            for pid in [*children_of(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)


def test_killed_engines_shim_and_container_are_reaped(make_container):
    """On every engine: the running container's shim is found by the engine's exec root; after
    a SIGKILL of dockerd it outlives its engine, and reaping ends it and the container."""
    record = running_dockerd()
    exec_root = exec_root_of(record.cmdline)
    c = make_container(None)
    cid = docker("inspect", "-f", "{{.Id}}", c.name).strip()
    container_pid = int(docker("inspect", "-f", "{{.State.Pid}}", c.name).strip())
    shims = [p for p in engine_processes(exec_root) if p.kind == "shim" and p.container_id == cid]
    assert len(shims) == 1, f"no shim of container {cid} among {engine_processes(exec_root)}"
    kill_dockerd(signal.SIGKILL)
    try:
        left = [p for p in engine_processes(exec_root) if p.kind != "dockerd"]
        assert shims[0] in left, f"the shim of {cid} did not outlive its dockerd: {left}"
        assert reap(left) == []
        assert pid_gone(shims[0].pid) and pid_gone(container_pid)
        assert engine_processes(exec_root) == []
    finally:
        start_dockerd(record)
    wait_for(lambda: docker("inspect", "-f", "{{.State.Running}}", c.name).strip() == "false", 60,
             f"{c.name} to be seen as not running by the restarted dockerd")
    assert docker("image", "inspect", IMAGE, check=False).ok
