"""Debian packages of another release, unpacked (not installed) into a cache directory:
how the extra engines (Docker 26.1 from trixie, 28.5 from sid) and Docker Compose get onto
this Debian 12 machine.

fetch_unpacked() downloads with a private apt configuration - its own sources list, lists and
cache in a temporary directory; the machine's apt sources, lists and cache are neither read
nor changed (proxy settings in apt.conf.d still apply) - and unpacks every .deb with
`dpkg -x` into <dir>/root, links the binaries that are used into <dir>/bin and writes
<dir>/.complete (one `package=version` a line) last. A directory with .complete is a cache
hit: nothing is downloaded again.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENGINES_DIR = Path(os.environ.get("PYNETDRV_ENGINES_DIR") or "/opt/pynetdrv-engines")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class FetchError(RuntimeError):
    """Downloading or unpacking a package set failed; the message says which and why."""


@dataclass(frozen=True)
class PackageSet:
    """What to fetch: `packages` of Debian `suite`, the first of them at a version starting
    with `want_version`; `links` maps a name in <dir>/bin to a path (relative: inside
    <dir>/root; absolute: a file of this machine, linked if it exists)."""

    name: str  # directory under ENGINES_DIR
    suite: str
    packages: tuple[str, ...]
    want_version: str
    links: tuple[tuple[str, str], ...]
    probes: tuple[str, ...]  # names in <dir>/bin that must answer `--version` on this machine

    @property
    def dir(self) -> Path:
        return ENGINES_DIR / self.name

    @property
    def bin(self) -> Path:
        return self.dir / "bin"

    def cached(self) -> bool:
        return (self.dir / ".complete").is_file() and all(
            os.access(self.bin / name, os.X_OK) for name, target in self.links if not target.startswith("/"))

    def versions(self) -> str:
        return " ".join((self.dir / ".complete").read_text().split())


def debian_mirror() -> str:
    """The Debian mirror the machine's apt uses for bookworm ($PYNETDRV_DEBIAN_MIRROR overrides;
    deb.debian.org if none is found)."""
    if os.environ.get("PYNETDRV_DEBIAN_MIRROR"):
        return os.environ["PYNETDRV_DEBIAN_MIRROR"].rstrip("/")
    uris: list[str] = []

    def consider(types: list[str], found: list[str], suites: list[str]) -> None:
        if "deb" in types and "bookworm" in suites:
            uris.extend(u for u in found if re.match(r"https?://", u))

    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3:
                consider([words[0]], [words[1]], [words[2]])
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, list[str]] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
            if fields.get("enabled", ["yes"])[0].lower() != "no":
                consider(fields.get("types", []), fields.get("uris", []), fields.get("suites", []))
    return (uris or ["http://deb.debian.org/debian"])[0].rstrip("/")


def _run(argv: list[str], log: Path, cwd: Path | None = None) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        rc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            timeout=900, check=False).returncode
    if rc != 0:
        raise FetchError(f"exit {rc}: {' '.join(argv)}; output:\n{log.read_text(errors='replace')[-4000:]}")


def _deb_field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def fetch_unpacked(pkgs: PackageSet, say: Callable[[str], None] = print) -> Path:
    """The unpacked package set's directory, downloading it first unless cached."""
    if pkgs.cached():
        say(f"{pkgs.name}: using {pkgs.dir} ({pkgs.versions()})")
        return pkgs.dir
    if not KEYRING.is_file():
        raise FetchError(f"{KEYRING} missing (apt-get install debian-archive-keyring)")
    started = time.monotonic()
    mirror = debian_mirror()
    say(f"{pkgs.name}: downloading {' '.join(pkgs.packages)} from Debian {pkgs.suite} ({mirror}) into {pkgs.dir}")
    with tempfile.TemporaryDirectory(prefix="pynetdrv-engines.") as tmp_name:
        tmp = Path(tmp_name)
        for sub in ("lists/partial", "cache/archives/partial", "debs"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror} {pkgs.suite} main\n")
        apt = ["apt-get", "-qq",
               "-o", f"Dir::Etc::SourceList={tmp}/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", f"Dir::State::Lists={tmp}/lists", "-o", f"Dir::Cache={tmp}/cache",
               "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
               "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=3"]
        log = tmp / "apt.log"
        _run([*apt, "update"], log)
        _run([*apt, "download", *pkgs.packages], log, cwd=tmp / "debs")
        debs = sorted((tmp / "debs").glob("*.deb"))
        main = [d for d in debs if _deb_field(d, "Package") == pkgs.packages[0]]
        version = _deb_field(main[0], "Version") if main else "(not downloaded)"
        if not version.startswith(pkgs.want_version):
            raise FetchError(f"Debian {pkgs.suite} has {pkgs.packages[0]} {version}, expected {pkgs.want_version}*")
        new = pkgs.dir.with_name(pkgs.dir.name + ".new")
        shutil.rmtree(new, ignore_errors=True)
        (new / "bin").mkdir(parents=True)
        complete = []
        for deb in debs:
            _run(["dpkg", "-x", str(deb), str(new / "root")], log)
            complete.append(f"{_deb_field(deb, 'Package')}={_deb_field(deb, 'Version')}\n")
        for name, target in pkgs.links:
            if target.startswith("/"):
                if Path(target).exists():
                    (new / "bin" / name).symlink_to(target)
                continue
            if not (new / "root" / target).exists():
                raise FetchError(f"{pkgs.name}: the packages have no {target}")
            # Absolute links into the final directory (they dangle until the rename below).
            (new / "bin" / name).symlink_to(pkgs.dir / "root" / target)
        shutil.rmtree(pkgs.dir, ignore_errors=True)
        new.rename(pkgs.dir)
    for name in pkgs.probes:
        probe = subprocess.run([str(pkgs.bin / name), "--version"], capture_output=True, text=True,
                               timeout=30, check=False)
        if probe.returncode != 0:
            raise FetchError(f"{pkgs.bin / name} does not run on this machine: {probe.stderr.strip()[:400]}")
    (pkgs.dir / ".complete").write_text("".join(complete))
    say(f"{pkgs.name}: {pkgs.versions()} unpacked in {time.monotonic() - started:.0f} s")
    return pkgs.dir
