"""The Vagrant lab's files (docs/vagrant-lab.md) without running a VM: the Vagrantfile parses
(`ruby -c`), every shell script of the lab parses (`bash -n`) and passes shellcheck, and the
Vagrantfile provisions with the scripts that exist, with the lab's cluster flags."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "Vagrantfile"
SCRIPTS = [ROOT / "scripts" / "vagrant-lab", *sorted((ROOT / "scripts" / "vagrant").glob("*.sh"))]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def test_the_lab_has_its_scripts() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"vagrant-lab", "build-box.sh", "provision-etcd.sh", "provision-node.sh", "busybox-image.sh"} <= names


def test_vagrantfile_parses() -> None:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip("ruby not installed (apt-get install ruby)")
    r = run(ruby, "-c", str(VAGRANTFILE))
    assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stderr


def test_scripts_parse() -> None:
    for script in SCRIPTS:
        r = run("bash", "-n", str(script))
        assert r.returncode == 0, f"{script}: {r.stderr}"


def test_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed")
    r = run(shellcheck, "-x", "-P", "SCRIPTDIR/../..", "-P", "SCRIPTDIR/..", *(str(s) for s in SCRIPTS))
    assert r.returncode == 0, r.stdout


def test_vagrantfile_provisions_with_existing_scripts() -> None:
    text = VAGRANTFILE.read_text()
    paths = re.findall(r'path: "([^"]+)"', text)
    assert paths, "no shell provisioner in the Vagrantfile"
    for path in paths:
        assert (ROOT / path).is_file(), path


def test_nodes_run_pynetdrv_in_cluster_mode_before_docker() -> None:
    node = (ROOT / "scripts" / "vagrant" / "provision-node.sh").read_text()
    assert "serve --store etcd://$etcd_ip:2379 --advertise-address $ip" in node
    assert "contrib/systemd/pynetdrv.service" in node  # the shipped unit (Before=docker.service)
    service = (ROOT / "contrib" / "systemd" / "pynetdrv.service").read_text()
    assert re.search(r"^Before=docker\.service$", service, re.M)


def test_etcd_flags_match_the_one_machine_lab() -> None:
    """provision-etcd.sh writes the flags integration/lab/etcd.py passes, as ETCD_* variables."""
    lab = (ROOT / "integration" / "lab" / "etcd.py").read_text()
    conf = (ROOT / "scripts" / "vagrant" / "provision-etcd.sh").read_text()
    flags = set(re.findall(r'"--([a-z-]+)"', lab))
    assert flags >= {"listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-cluster"}
    variables = {v.lower().replace("_", "-") for v in re.findall(r"^ETCD_([A-Z_]+)=", conf, re.M)}
    assert flags - {"data-dir"} == variables, (flags, variables)
