"""Small file systems for the state-disk tests: a tmpfs that can be filled to
the last byte, and an ext4 image that can be forced read-only the way the
kernel does on an I/O error (errors=remount-ro).  Both are unmounted and
removed even when the test fails."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"


def _unmount(mountpoint: Path) -> None:
    # Lazy: a file a failed test left open must not keep the mount around.
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=60, check=False)
    with suppress(OSError):
        mountpoint.rmdir()


@contextmanager
def small_tmpfs(size: str = "2m") -> Iterator[Path]:
    mountpoint = Path(tempfile.mkdtemp(prefix="pynetdrv-statefs-"))
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint))
        yield mountpoint
    finally:
        _unmount(mountpoint)


@contextmanager
def ext4_image(size_mib: int = 16) -> Iterator[tuple[Path, str]]:
    """(mountpoint, loop device name) of a fresh ext4 mounted errors=remount-ro."""
    image = Path(tempfile.mkstemp(prefix="pynetdrv-statefs-", suffix=".img")[1])
    mountpoint = Path(tempfile.mkdtemp(prefix="pynetdrv-statefs-"))
    try:
        os.truncate(image, size_mib << 20)
        _run("mkfs.ext4", "-q", "-F", str(image))
        _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mountpoint))
        os.chmod(mountpoint, 0o700)
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)], capture_output=True,
                                text=True, timeout=30, check=True).stdout.strip()
        yield mountpoint, os.path.basename(source)
    finally:
        _unmount(mountpoint)
        image.unlink(missing_ok=True)  # the loop device detaches with the last unmount (autoclear)


def force_read_only(device: str) -> None:
    """What ext4 does on a metadata I/O error with errors=remount-ro: the file
    system turns read-only under open files (a plain remount,ro is refused
    while a file is open for writing)."""
    Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("1\n")


def is_read_only(mountpoint: Path) -> bool:
    """ext4's emergency read-only keeps "rw" in the mount flags: probe it."""
    try:
        os.close(os.open(mountpoint / "probe", os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as e:
        return e.errno == errno.EROFS
    os.unlink(mountpoint / "probe")
    return False


def fill(mountpoint: Path) -> Path:
    """Take every free byte of the file system; returns the filler file."""
    filler = mountpoint / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(chunk[:size])
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    assert os.statvfs(mountpoint).f_bavail == 0
    return filler


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through a separate connection: what is
    on disk (WAL included), not what the daemon believes."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
        out["user_version"] = [tuple(conn.execute("PRAGMA user_version").fetchone())]
        return out
    finally:
        conn.close()
