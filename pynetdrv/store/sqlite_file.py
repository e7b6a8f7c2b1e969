"""The state file on disk: checked before use, created whole, private to root.

pynetdrv writes only to a file it has recognised as its own.  An existing
file is first inspected without writing to it (raw header bytes, then a
read-only SQLite connection):

- empty, not SQLite at all, truncated or damaged: refused;
- an SQLite database of another application (another ``application_id``, or
  tables that are not pynetdrv's schema): refused;
- a pynetdrv database of a newer schema than this pynetdrv knows: refused;
- a pynetdrv database without our ``application_id`` (written before it was
  set) is recognised by its tables and gets the id on open.

Every refusal is a ``StateFileError`` whose message names the file and what is
wrong, and says the file was left unchanged.

A new state file is built under a temporary name and linked into place only
when its schema is complete, so the state path never holds a half-made
database: an empty file there is damage, never pynetdrv's own leftover.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from pynetdrv.errors import StateFileError
from pynetdrv.store.sqlite_schema import MIGRATIONS, migrate
from pynetdrv.store.state_dir import check_state_dir

#: ``PRAGMA application_id`` of pynetdrv state files: "pndr".
APPLICATION_ID = 0x706E6472
_MAGIC = b"SQLite format 3\x00"
_UNCHANGED = "it was left unchanged"


__all__ = ["StateFileError", "check_state_dir", "configure", "create", "inspect", "open_state", "tables_of"]


def configure(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a reply is sent only after the allocation is on disk, so a host
    # crash cannot make us forget an address Docker was told about.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")


def open_state(path: Path) -> sqlite3.Connection:
    """A read-write connection to the checked (or newly created) state file,
    migrated to the current schema."""
    check_state_dir(path)
    if os.path.lexists(path):
        inspect(path)
        _tighten_permissions(path)
    else:
        create(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        configure(conn)
        migrate(conn)
        _stamp(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def create(path: Path) -> None:
    """Build a complete, empty state file (mode 0600) and link it into place;
    never replaces a file that appeared at ``path`` meanwhile."""
    tmp = path.with_name(path.name + ".new")
    # Only a crash during an earlier create leaves this; we hold the state lock.
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        leftover.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            configure(conn)
            migrate(conn)
            _stamp(conn)
        finally:
            conn.close()  # checkpoints the WAL into the file and removes it
        _fsync(tmp)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent)


def inspect(path: Path) -> None:
    """Raise StateFileError unless ``path`` is a sound pynetdrv state file of a
    schema this pynetdrv knows.  Never writes to ``path``."""
    where = f"state file {path}"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as e:
        raise StateFileError(f"cannot read {where}: {e.strerror}") from None
    if size == 0:
        raise StateFileError(
            f"{where} is empty (0 bytes), so it holds no pynetdrv state; {_UNCHANGED}. If it was truncated, "
            "restore it from a backup; to start with no state, remove it"
        )
    if not head.startswith(_MAGIC):
        raise StateFileError(
            f"{where} is not an SQLite database (it starts with {head[:16]!r}); {_UNCHANGED}. "
            "Restore it from a backup, or move it away to start with no state"
        )
    if _wal_size(path) == 0:
        # With WAL frames present, a short file may be a checkpoint cut off by
        # a crash, which SQLite completes from the WAL: let quick_check judge.
        _check_length(where, head, size)
    app_id, version, tables, problem = _read_only_look(path)
    if problem is not None:
        problem = " ".join(problem.split())  # quick_check's report spans lines
        raise StateFileError(f"{where} is damaged: {problem[:300]}; {_UNCHANGED}. Restore it from a backup")
    _check_identity(where, app_id, version, tables)


def _check_length(where: str, head: bytes, size: int) -> None:
    if len(head) < 100:
        raise StateFileError(f"{where} is truncated: {size} bytes, shorter than an SQLite header; {_UNCHANGED}")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The header's page count is valid when the change counter matches
    # "version-valid-for" (SQLite file format, section 1.3.7).
    if pages and head[24:28] == head[92:96] and pages * page_size > size:
        raise StateFileError(
            f"{where} is truncated: its header says {pages} pages of {page_size} bytes "
            f"({pages * page_size} bytes), the file has {size}; {_UNCHANGED}. Restore it from a backup"
        )


def _wal_size(path: Path) -> int:
    try:
        return Path(f"{path}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def _read_only_look(path: Path) -> tuple[int, int, set[str], str | None]:
    """(application_id, user_version, table names, damage or None)."""
    # Without WAL frames the file alone is the database: immutable=1 reads it
    # without locks and without creating -wal/-shm files next to it.
    uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if _wal_size(path) == 0 else "")
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        return 0, 0, set(), str(e)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(conn)
        check = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
        problem = None if check == ["ok"] else "; ".join(check)
        return app_id, version, tables, problem
    except sqlite3.Error as e:
        return 0, 0, set(), str(e)
    finally:
        conn.close()


def _check_identity(where: str, app_id: int, version: int, tables: set[str]) -> None:
    known = len(MIGRATIONS)
    if app_id not in (0, APPLICATION_ID):
        raise StateFileError(
            f"{where} is an SQLite database of another application (application_id {app_id:#010x}, "
            f"pynetdrv's is {APPLICATION_ID:#010x}); {_UNCHANGED}. Point --state at pynetdrv's own file"
        )
    if app_id == 0 and (tables or version):
        # Written before pynetdrv set its application_id: recognise it by its schema.
        if version > known and tables >= tables_of(known):
            pass  # a newer pynetdrv's file; refused below
        elif not (1 <= version <= known and tables == tables_of(version)):
            listed = ", ".join(sorted(tables)[:6]) or "none"
            raise StateFileError(
                f"{where} is an SQLite database of another application: its tables ({listed}) and "
                f"user_version {version} are not a pynetdrv schema; {_UNCHANGED}. Point --state at pynetdrv's own file"
            )
    if version > known:
        raise StateFileError(
            f"{where} has schema version {version}, newer than this pynetdrv understands ({known}): "
            f"it was written by a newer pynetdrv; {_UNCHANGED}. Upgrade pynetdrv"
        )


def tables_of(version: int) -> set[str]:
    """The tables of pynetdrv's schema at ``version`` (migrations 1..version)."""
    conn = sqlite3.connect(":memory:")
    try:
        for script in MIGRATIONS[:version]:
            conn.executescript(script)
        return _tables(conn)
    finally:
        conn.close()


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {row[0] for row in rows}


def _stamp(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _tighten_permissions(path: Path) -> None:
    """Our recognised file: owned by the daemon's user, no access for others,
    no group write (0640 at most; new files are 0600).  SQLite gives its -wal
    and -shm files the database file's mode."""
    st = path.stat()
    if st.st_uid != os.geteuid():
        raise StateFileError(
            f"state file {path} is owned by uid {st.st_uid}, not by uid {os.geteuid()} that pynetdrv runs as: "
            f"that user could rewrite pynetdrv's state; {_UNCHANGED}. chown it if it is really pynetdrv's"
        )
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(f.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o037:
            os.chmod(f, mode & 0o640)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
