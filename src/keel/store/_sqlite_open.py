"""Opening the SQLite store file, and what a failed SQLite call means for the user.

Kept apart from `keel.store.sqlite` (the store's reads and writes): how a file is opened — created in WAL mode,
read-only, or immutable on a read-only disk — and how its failures are worded.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from keel.errors import StoreError, StoreNotFoundError

__all__ = ["connect", "store_error"]


def connect(path: Path, create: bool) -> sqlite3.Connection:
    """A connection to the store file at `path`: created and in WAL mode, or read-only (see `SQLiteStore`)."""
    if not create and not path.exists():
        raise StoreNotFoundError(
            f"no store at {path} yet: run an agent first, or point KEEL_STORE/--store at an existing store",
            path=str(path),
        )
    sync = os.environ.get("KEEL_SQLITE_SYNC", "NORMAL").upper()
    if create and sync not in ("NORMAL", "FULL"):
        raise StoreError(f"KEEL_SQLITE_SYNC must be NORMAL or FULL, got {sync!r}")
    conn: sqlite3.Connection | None = None
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            target: str | Path = path
        else:  # read-only; should the file vanish after the check above, SQLite fails instead of creating it
            target = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=10.0, uri=not create)
        conn.execute("PRAGMA busy_timeout=10000")
        if not create:
            conn = _readable(path, conn, target)
        if create:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={sync}")
    except (OSError, sqlite3.Error) as exc:
        if conn is not None:
            conn.close()
        advice = ". Check that the directory exists and is writable, or point KEEL_STORE at another file."
        raise store_error(path, "open", exc, advice) from exc
    return conn


def store_error(path: Path, doing: str, exc: OSError | sqlite3.Error, advice: str = "") -> StoreError:
    """What a failed SQLite call means for the user: said plainly when the file is not a store or is damaged.

    Neither is repaired: SQLite refuses such a file before writing to it, and a failed write is rolled back.
    """
    code = getattr(exc, "sqlite_errorname", "")
    kept = "The write was not made" if doing == "write to" else "Nothing was written to it"
    if code == "SQLITE_NOTADB":
        return StoreError(
            f"{path} is not a Keel store: it is not an SQLite database ({exc}). {kept}; point "
            "KEEL_STORE/--store at a Keel store."
        )
    if code.startswith("SQLITE_CORRUPT"):
        return StoreError(
            f"the store at {path} is corrupt: SQLite cannot read it ({exc}), as with a truncated or damaged "
            f"file. {kept}; restore it from a backup, or point KEEL_STORE/--store at another store."
        )
    return StoreError(f"cannot {doing} the store at {path}: {exc}{advice}")


def _readable(path: Path, conn: sqlite3.Connection, target: str | Path) -> sqlite3.Connection:
    """`conn`, or, for a WAL store on a read-only disk or directory, a connection that can read it.

    Reading a WAL-mode file needs its ``-shm`` file, which SQLite cannot create where nothing may be written.
    With no ``-wal`` file beside it (no writer, nothing pending) the file is complete, and SQLite reads it as
    immutable.
    """
    try:
        conn.execute("PRAGMA user_version").fetchone()
        return conn
    except sqlite3.OperationalError:
        if Path(f"{path}-wal").exists():
            raise
    conn.close()
    immutable = sqlite3.connect(
        f"{target}&immutable=1", isolation_level=None, check_same_thread=False, timeout=10.0, uri=True
    )
    try:
        immutable.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error:
        immutable.close()
        raise
    return immutable
