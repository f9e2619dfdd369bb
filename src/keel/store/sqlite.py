"""The embedded store: one SQLite file in WAL mode, zero configuration.

Each event is its own committed transaction. With WAL and ``synchronous=NORMAL`` a commit reaches the
database file's log before `append` returns, so a process that dies between steps loses nothing it recorded
(only a power cut can lose the last commits, which ``KEEL_SQLITE_SYNC=FULL`` prevents). Calls are made
directly on the event loop's thread: a local commit takes microseconds, less than a hop to a worker thread.
A lock serializes the connection for programs that share one store between threads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from keel.errors import ResumeError, ReviewError, StoreError, StoreVersionError, UnknownRunError
from keel.journal import Event, EventKind
from keel.result import RunStatus
from keel.store import _sqlite_reviews, _sqlite_rollups, _sqlite_spend
from keel.store._migrations import MIGRATIONS, SCHEMA_VERSION
from keel.store._run_filter import run_filter
from keel.store._sealing import sealing_for
from keel.store._sqlite_open import connect, store_error
from keel.store._sqlite_rows import (
    EVENT_COLUMNS,
    INSERT_EVENT,
    RUN_COLUMNS,
    event_of,
    event_row,
    run_record,
    run_row,
    split,
)
from keel.store.base import (
    Decision,
    ReviewItem,
    ReviewStatus,
    RunRecord,
    SpendBlocked,
    SpendCheck,
    SpendEntry,
    SpendTotals,
    moved_on,
    not_paused,
)
from keel.store.rollups import RollupRow

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")

# Work a migration does beyond its SQL: computing the rollups of the events a store already holds.
_AFTER_MIGRATION: dict[int, Callable[[sqlite3.Connection], None]] = {4: _sqlite_rollups.backfill}


def _migrated(conn: sqlite3.Connection) -> None:
    """Bring the schema from its version to ours (read under the write lock: another process may have migrated it)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number in range(version + 1, SCHEMA_VERSION + 1):
        for statement in split(MIGRATIONS[number - 1]):
            conn.execute(statement)
        if number in _AFTER_MIGRATION:
            _AFTER_MIGRATION[number](conn)
        conn.execute(f"PRAGMA user_version={number}")


class SQLiteStore:
    """Runs and journals in one SQLite file (default ``.keel/keel.db``).

    Args:
        path: the database file.
        create: create the file (and its directory) when missing, and migrate it. With ``create=False`` the
            store is opened read-only: a missing file raises `StoreNotFoundError`, a file that is not a Keel store
            of this version raises `StoreError`, and nothing is ever written, so commands that only read never
            leave a store behind or change one.
        encryption_key: the journal key (or keys, newest first) that seals content at rest (`keel.store._sealing`);
            None reads ``KEEL_JOURNAL_KEY``, and without either content is kept in clear.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, encryption_key: str | Sequence[str] | None = None
    ) -> None:
        self._sealing = sealing_for(encryption_key)
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._writes = 0  # this connection's own commits, which SQLite's data_version does not count
        self._conn = connect(self.path, create)
        if create:
            self._migrate()
        else:
            self._check_readable()

    def _error(self, doing: str, exc: OSError | sqlite3.Error, advice: str = "") -> StoreError:
        return store_error(self.path, doing, exc, advice)

    def _version(self) -> int:
        try:
            version: int = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the store at {self.path} has schema version {version}, newer than this Keel "
                f"understands ({SCHEMA_VERSION}); upgrade keel-agents"
            )
        return version

    def _check_readable(self) -> None:
        version = self._version()
        if version == 0:
            raise StoreError(f"{self.path} is not a Keel store (it has no Keel schema)")
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.path} has schema version {version}; run an agent on it with this Keel to "
                f"migrate it to version {SCHEMA_VERSION}"
            )

    def _migrate(self) -> None:
        if self._version() != SCHEMA_VERSION:
            self._atomic(_migrated, doing="prepare")  # one process migrates; the others wait, then skip

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            with self._lock:
                self._writes += 1
                return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error("write to", exc) from exc

    def _transaction(
        self, run_id: str, *statements: tuple[str, tuple[Any, ...]], counted: Sequence[tuple[Any, ...]] = ()
    ) -> None:
        """Run `statements` atomically, then the rollup upserts `counted` (`_sqlite_rollups.rows_of`).

        Each statement must change a row (an UPDATE of an unknown run rolls all back).
        """

        def work(conn: sqlite3.Connection) -> None:
            for sql, params in statements:
                if conn.execute(sql, params).rowcount == 0:
                    raise UnknownRunError(f"no run {run_id!r} in the store at {self.path}")
            if counted:
                conn.executemany(_sqlite_rollups.UPSERT, counted)

        self._atomic(work, begin="BEGIN")

    def _atomic(
        self, work: Callable[[sqlite3.Connection], _T], *, begin: str = "BEGIN IMMEDIATE", doing: str = "write to"
    ) -> _T:
        """Run `work` in one transaction, rolled back if it raises.

        ``BEGIN IMMEDIATE`` (the default) takes the write lock first: other processes' writers wait
        (``busy_timeout``), so what `work` reads cannot change before it writes.
        """
        try:
            with self._lock:
                self._conn.execute(begin)
                try:
                    result = work(self._conn)
                    self._writes += 1
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                return result
        except sqlite3.Error as exc:
            raise self._error(doing, exc) from exc

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc

    async def create_run(self, run: RunRecord, first: Event) -> None:
        """Insert a new run together with its first event, in one transaction."""
        seal = self._sealing
        self._transaction(
            run.run_id,
            (f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 15)})", run_row(seal.seal_run(run))),
            (INSERT_EVENT, event_row(seal.seal_event(first))),
            counted=_sqlite_rollups.rows_of(first),
        )

    async def finish_run(self, run: RunRecord, last: Event) -> None:
        """Append the last event and write the run's outcome, in one transaction."""
        row = run_row(self._sealing.seal_run(run))
        self._transaction(
            run.run_id,
            (INSERT_EVENT, event_row(self._sealing.seal_event(last))),
            (
                "UPDATE runs SET status=?, finished_at=?, steps=?, input_tokens=?, output_tokens=?, cost_usd=?, "
                "output=?, report=?, reason=? WHERE run_id=?",
                (*row[5:6], *row[7:], run.run_id),
            ),
            counted=_sqlite_rollups.rows_of(last),
        )

    async def append(self, event: Event) -> None:
        """Append one event and commit it, with the rollups it moves (most events move none: one statement)."""
        counted = _sqlite_rollups.rows_of(event)
        row = event_row(self._sealing.seal_event(event))
        if counted:
            self._transaction(event.run_id, (INSERT_EVENT, row), counted=counted)
        else:
            self._write(INSERT_EVENT, row)

    async def resume_run(self, run_id: str, first: Event, *, paused: RunStatus) -> RunRecord:
        """Claim a paused run (status `paused` → running) and append `first`, in one ``BEGIN IMMEDIATE``.

        `first` must directly follow the journal as the caller read it: a run another process appended to since
        (it resumed the run, or it is still running) is refused.
        """

        def claim(conn: sqlite3.Connection) -> None:
            found = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if found is None:
                raise UnknownRunError(f"no run {run_id!r} in the store at {self.path}")
            if found[0] != paused.value:
                raise ResumeError(not_paused(run_id, found[0], paused))
            (last,) = conn.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
            if last != first.seq - 1:  # someone appended since the caller read the journal: it is not theirs
                raise ResumeError(moved_on(run_id))
            conn.execute("UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?", (RunStatus.RUNNING, run_id))
            conn.execute(INSERT_EVENT, event_row(self._sealing.seal_event(first)))

        self._atomic(claim)
        return await self.get_run(run_id)

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; `UnknownRunError` when there is none."""
        rows = self._read(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise UnknownRunError(f"no run {run_id!r} in the store at {self.path}")
        return self._sealing.open_run(run_record(rows[0]))

    async def list_runs(
        self,
        *,
        limit: int = 20,
        agent: str | None = None,
        session_id: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Most recent runs first, optionally filtered, from the `offset`-th match."""
        where, params = run_filter(agent, session_id, status, since, mark="?")
        rows = self._read(
            f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [self._sealing.open_run(run_record(row)) for row in rows]

    async def count_runs(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
    ) -> int:
        """How many runs `list_runs` would find with these filters and no limit."""
        where, params = run_filter(agent, session_id, status, since, mark="?")
        return int(self._read(f"SELECT COUNT(*) FROM runs {where}", tuple(params))[0][0])

    async def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """The journal of a run in order: the events after seq `after`, at most `limit` of them."""
        await self.get_run(run_id)
        rows = self._read(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, -1 if limit is None else limit),
        )
        return [self._sealing.open_event(event_of(r)) for r in rows]

    async def recent_events(self, kind: EventKind, *, limit: int = 100, since: float | None = None) -> list[Event]:
        """The latest events of one kind across all runs, newest first."""
        rows = self._read(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE kind = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
            (kind.value, since if since is not None else float("-inf"), limit),
        )
        return [self._sealing.open_event(event_of(r)) for r in rows]

    async def rollups(
        self, *, since: float | None = None, metrics: Sequence[str] | None = None, bucket_s: int = 60
    ) -> list[RollupRow]:
        """Rollup counters summed per bucket of `bucket_s` seconds (0: totals), agent, metric and labels."""
        sql, params = _sqlite_rollups.select(since, metrics, bucket_s, time.time())
        return [_sqlite_rollups.row_of(row) for row in self._read(sql, params)]

    async def cache_get(self, key: str, *, now: float) -> str | None:
        """The cached value under `key`, unless expired."""
        rows = self._read("SELECT value, expires_at FROM cache WHERE key = ?", (key,))
        if not rows or (rows[0][1] is not None and rows[0][1] <= now):
            return None
        return self._sealing.open_text(str(rows[0][0]), f"cache:{key}")

    async def cache_put(self, key: str, value: str, *, expires_at: float | None, now: float) -> None:
        """Insert or replace `key`, and drop up to 100 expired entries in the same transaction."""
        value = self._sealing.seal_text(value, f"cache:{key}")

        def put(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO cache (key, value, expires_at, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO "
                "UPDATE SET value = excluded.value, expires_at = excluded.expires_at, created_at = excluded.created_at",
                (key, value, expires_at, now),
            )
            conn.execute(
                "DELETE FROM cache WHERE key IN (SELECT key FROM cache WHERE expires_at <= ? LIMIT 100)", (now,)
            )

        self._atomic(put)

    async def data_version(self) -> int:
        """A number that changes whenever the store changed, in this process or another: cheap, for polling."""
        (version,) = self._read("PRAGMA data_version", ())[0]
        return int(version) + self._writes

    async def reserve_spend(
        self, entry: SpendEntry, checks: Sequence[SpendCheck], *, purge_before: float | None = None
    ) -> SpendBlocked | None:
        """Check the ceilings and insert the reservation in one ``BEGIN IMMEDIATE`` transaction.

        The write lock is taken before the sums are read, so reservations from any number of processes are
        serialized: each sees every reservation committed before it.
        """
        return self._atomic(lambda conn: _sqlite_spend.reserve(conn, entry, checks, purge_before))

    async def settle_spend(self, entry: SpendEntry) -> None:
        """Replace the reservation's rows by the settled entry, in one transaction."""

        def settle(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM spend WHERE entry_id = ?", (entry.entry_id,))
            _sqlite_spend.insert_entry(conn, entry)

        self._atomic(settle)

    async def release_spend(self, entry_id: str) -> None:
        """Delete the reservation's rows."""
        self._write("DELETE FROM spend WHERE entry_id = ?", (entry_id,))

    async def spend_totals(self, key: str, since: float, *, now: float) -> SpendTotals:
        """Settled spend and live reservations under `key` since `since`."""
        try:
            with self._lock:
                return _sqlite_spend.totals(self._conn, key, since, now)
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc

    async def add_review(self, item: ReviewItem) -> None:
        """Insert a new review item and commit it."""
        self._write(_sqlite_reviews.INSERT, _sqlite_reviews.row_of(self._sealing.seal_review(item)))

    async def get_review(self, review_id: str) -> ReviewItem:
        """The review item with this id; `ReviewError` when there is none."""
        rows = self._read(_sqlite_reviews.SELECT_ONE, (review_id,))
        if not rows:
            raise ReviewError(f"no review item {review_id!r} in the store at {self.path}")
        return self._sealing.open_review(_sqlite_reviews.item_from_row(rows[0]))

    async def list_reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Pending items by priority then age, then decided ones, most recent decision first."""
        sql, params = _sqlite_reviews.select(status, run_id, limit)
        return [self._sealing.open_review(_sqlite_reviews.item_from_row(row)) for row in self._read(sql, params)]

    async def decide_review(
        self, review_id: str, decision: Decision, *, by: str, note: str = "", at: float
    ) -> ReviewItem:
        """Decide a pending item in one ``BEGIN IMMEDIATE`` transaction: the first decision wins, across processes."""
        sealed = self._sealing.seal_note(review_id, note)
        return self._atomic(
            lambda conn: _sqlite_reviews.decide(
                conn, review_id, decision, by, sealed, at, str(self.path), self._sealing.open_review
            )
        )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
