"""Stores: where runs and their journals live. `open_store()` picks one from a URL or ``KEEL_STORE``.

With a journal key (``encryption_key=`` or ``KEEL_JOURNAL_KEY``; `new_journal_key` makes one), every store keeps
journaled content encrypted at rest (see `keel.store._sealing` for what stays in clear).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from keel.errors import ConfigError
from keel.store._sealing import new_journal_key
from keel.store.base import RunRecord, Store
from keel.store.memory import MemoryStore
from keel.store.sqlite import SQLiteStore

__all__ = ["DEFAULT_STORE_PATH", "MemoryStore", "RunRecord", "SQLiteStore", "Store", "new_journal_key", "open_store"]

DEFAULT_STORE_PATH = Path(".keel") / "keel.db"


def open_store(
    url: str | os.PathLike[str] | None = None,
    *,
    create: bool = True,
    encryption_key: str | Sequence[str] | None = None,
) -> Store:
    """Open the store named by `url`, else by ``KEEL_STORE``, else ``.keel/keel.db``.

    Accepted forms: a file path, ``sqlite:///relative/or/absolute/path.db``, ``postgresql://user@host/db`` (the
    server-grade store, extra ``postgres``; tables in the ``keel`` schema), and ``memory://`` (in-process, nothing
    kept). With ``create=False`` a store file that does not exist yet is not created: `StoreError` is
    raised instead (``memory://`` is unaffected). Commands that only read use that.

    `encryption_key` (else ``KEEL_JOURNAL_KEY``): one journal key, or several newest first (a string separated by
    commas, or a sequence), that keeps journaled content encrypted at rest; the first seals, any opens.
    """
    target = str(url) if url is not None else os.environ.get("KEEL_STORE") or str(DEFAULT_STORE_PATH)
    if target in ("memory://", ":memory:"):
        return MemoryStore(encryption_key=encryption_key)
    if target.startswith("sqlite://"):
        path = target.removeprefix("sqlite://")
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:]  # sqlite:///rel.db → rel.db; sqlite:////abs.db → /abs.db
        elif path.startswith("//"):
            path = path[1:]
        if not path:
            raise ConfigError(f"store URL {target!r} names no file")
        return SQLiteStore(path, create=create, encryption_key=encryption_key)
    if target.startswith(("postgresql://", "postgres://")):
        from keel.store.postgres import PostgresStore  # the postgres extra: imported only for a PostgreSQL URL

        return PostgresStore(target, create=create, encryption_key=encryption_key)
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise ConfigError(
            f"unsupported store URL scheme {scheme!r}; use a file path, sqlite:///path.db, postgresql://… or memory://"
        )
    return SQLiteStore(target, create=create, encryption_key=encryption_key)
