"""The server-grade store: PostgreSQL, shared by every process and host pointed at it (extra ``postgres``).

Same guarantees as SQLite (`keel.store.base`), with PostgreSQL's own means: each event is committed with the rollups
it moves; resuming locks the run's row; the spend ledger locks its keys with advisory locks
(`keel.store._postgres_spend`); deciding a review is a conditional update; `data_version` sums a change counter
that triggers bump in every writing transaction (`keel.store._postgres_migrations`). Everything lives in one
PostgreSQL schema (``keel`` unless told), so several stores can share a database.

Calls run psycopg 3's synchronous driver on worker threads (`asyncio.to_thread`), from a thread-safe pool. A store
is used from many event loops — `Agent.run_sync` makes one per call, threads may each run their own — and an
asyncio pool belongs to the loop that opened it; a thread-safe pool serves them all, and a slow server never blocks
a loop. Driver failures become `StoreError`s naming the store by its URL with the password replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from keel.errors import MissingDependencyError, ReviewError, StoreError, UnknownRunError

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "PostgresStore needs psycopg 3, which is not installed; install Keel's postgres extra: "
        "pip install 'keel-agents[postgres]'"
    ) from exc

from keel.journal import Event, EventKind
from keel.result import RunStatus
from keel.store import _postgres_journal, _postgres_reviews, _postgres_rollups, _postgres_spend
from keel.store._postgres_journal import NoSuchRun
from keel.store._postgres_migrations import check_readable, migrate
from keel.store._postgres_pool import Conn, connect, connect_kwargs, open_pool, quoted, redact, scrub, secrets_of
from keel.store._postgres_reviews import NoSuchReview
from keel.store._sealing import sealing_for
from keel.store._sqlite_rollups import row_of
from keel.store.base import (
    Decision,
    ReviewItem,
    ReviewStatus,
    RunRecord,
    SpendBlocked,
    SpendCheck,
    SpendEntry,
    SpendTotals,
)
from keel.store.rollups import RollupRow

__all__ = ["PostgresStore"]

_T = TypeVar("_T")

_CACHE_PUT = (
    "INSERT INTO {s}.cache (key, value, expires_at, created_at) VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO "
    "UPDATE SET value = excluded.value, expires_at = excluded.expires_at, created_at = excluded.created_at"
)
# Up to 100 expired entries; rows another writer holds are skipped, so two puts never wait on (or deadlock over) them.
_CACHE_PURGE = (
    "DELETE FROM {s}.cache WHERE key IN "
    "(SELECT key FROM {s}.cache WHERE expires_at <= %s LIMIT 100 FOR UPDATE SKIP LOCKED)"
)


class PostgresStore:
    """Runs, journals, the spend ledger, the review queue, rollups and the cache in a PostgreSQL schema.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (or a ``key=value`` connection string). A URL
            without ``connect_timeout`` gets 5 seconds: an unreachable server fails fast.
        create: create the schema when missing and migrate it. With ``create=False`` nothing is ever created or
            written (sessions are read-only): a missing schema raises `StoreNotFoundError`, a schema of an older
            version or not Keel's raises `StoreError`.
        schema: the PostgreSQL schema (namespace) holding the store's tables; a plain name.
        max_connections: the most connections the store's pool opens to the server at once.
        encryption_key: the journal key (or keys, newest first) that seals content at rest (`keel.store._sealing`);
            None reads ``KEEL_JOURNAL_KEY``, and without either content is kept in clear.

    Raises:
        StoreError: the server cannot be reached, or the store cannot be prepared (the message says why).
        StoreVersionError: the store was written by a newer Keel.
        ConfigError: `url` or `schema` is malformed.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        schema: str = "keel",
        max_connections: int = 10,
        encryption_key: str | Sequence[str] | None = None,
    ) -> None:
        self._sealing = sealing_for(encryption_key)
        self.url = redact(url)
        """The URL, with any password replaced by ``***``."""
        self.schema = schema
        self._s = quoted(schema)
        self._where = f"{self.url} (schema {schema})"
        self._secrets = secrets_of(url)
        kwargs = connect_kwargs(url, redacted=self.url)
        try:
            with connect(url, kwargs, read_only=not create) as conn:
                if create:
                    migrate(conn, schema, self._where)
                else:
                    check_readable(conn, schema, self._where)
            self._pool = open_pool(
                url, kwargs, read_only=not create, name=f"keel-{schema}", max_size=max(1, max_connections)
            )
        except (psycopg.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the store at {self._where}: {self._why(exc)}. Check that the server is running and "
                "reachable and that the URL (KEEL_STORE/--store) is right."
            ) from exc

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, schema={self.schema!r})"

    def _why(self, exc: BaseException) -> str:
        """What went wrong, on one line and without the password."""
        why = scrub(str(exc) or type(exc).__name__, self._secrets)
        if isinstance(exc, psycopg.errors.UniqueViolation) and exc.diag.table_name == "events":
            why = f"that event is already recorded and the journal is append-only ({why})"
        return why

    def _do(self, doing: str, work: Callable[[Conn], _T]) -> _T:
        """Run `work` on a pooled connection (in autocommit mode: `work` opens its transactions)."""
        try:
            with self._pool.connection() as conn:
                return work(conn)
        except NoSuchRun as exc:
            raise UnknownRunError(f"no run {exc.args[0]!r} in the store at {self._where}") from None
        except NoSuchReview as exc:
            raise ReviewError(f"no review item {exc.args[0]!r} in the store at {self._where}") from None
        except (psycopg.Error, OSError) as exc:
            raise StoreError(f"cannot {doing} the store at {self._where}: {self._why(exc)}") from exc

    async def _run(self, doing: str, work: Callable[[Conn], _T]) -> _T:
        """`_do` on a worker thread, so that the event loop goes on while the server answers."""
        return await asyncio.to_thread(self._do, doing, work)

    async def create_run(self, run: RunRecord, first: Event) -> None:
        """Insert a new run together with its first event, in one transaction."""
        run, first = self._sealing.seal_run(run), self._sealing.seal_event(first)
        await self._run("write to", lambda conn: _postgres_journal.create_run(conn, self._s, run, first))

    async def finish_run(self, run: RunRecord, last: Event) -> None:
        """Append the last event and write the run's outcome, in one transaction."""
        run, last = self._sealing.seal_run(run), self._sealing.seal_event(last)
        await self._run("write to", lambda conn: _postgres_journal.finish_run(conn, self._s, run, last))

    async def append(self, event: Event) -> None:
        """Append one event and commit it, with the rollups it moves."""
        event = self._sealing.seal_event(event)
        await self._run("write to", lambda conn: _postgres_journal.append(conn, self._s, event))

    async def resume_run(self, run_id: str, first: Event, *, paused: RunStatus) -> RunRecord:
        """Claim a paused run (status `paused` → running) and append `first`, with the run's row locked.

        `first` must directly follow the journal as the caller read it: a run another process appended to since
        (it resumed the run, or it is still running) is refused with `ResumeError`.
        """
        first = self._sealing.seal_event(first)
        row = await self._run(
            "write to", lambda conn: _postgres_journal.resume_run(conn, self._s, run_id, first, paused)
        )
        return self._sealing.open_run(row)

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; `UnknownRunError` when there is none."""
        run = await self._run("read", lambda conn: _postgres_journal.get_run(conn, self._s, run_id))
        return self._sealing.open_run(run)

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
        runs = await self._run(
            "read",
            lambda conn: _postgres_journal.list_runs(
                conn,
                self._s,
                limit=limit,
                offset=offset,
                agent=agent,
                session_id=session_id,
                status=status,
                since=since,
            ),
        )
        return [self._sealing.open_run(run) for run in runs]

    async def count_runs(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
    ) -> int:
        """How many runs `list_runs` would find with these filters and no limit."""
        return await self._run(
            "read",
            lambda conn: _postgres_journal.count_runs(
                conn, self._s, agent=agent, session_id=session_id, status=status, since=since
            ),
        )

    async def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """The journal of a run in order: the events after seq `after`, at most `limit` of them."""
        found = await self._run("read", lambda conn: _postgres_journal.events(conn, self._s, run_id, after, limit))
        return [self._sealing.open_event(event) for event in found]

    async def recent_events(self, kind: EventKind, *, limit: int = 100, since: float | None = None) -> list[Event]:
        """The latest events of one kind across all runs, newest first."""
        found = await self._run("read", lambda conn: _postgres_journal.recent_events(conn, self._s, kind, limit, since))
        return [self._sealing.open_event(event) for event in found]

    async def rollups(
        self, *, since: float | None = None, metrics: Sequence[str] | None = None, bucket_s: int = 60
    ) -> list[RollupRow]:
        """Rollup counters summed per bucket of `bucket_s` seconds (0: totals), agent, metric and labels."""
        sql, params = _postgres_rollups.select(self._s, since, metrics, bucket_s, time.time())
        return await self._run("read", lambda conn: [row_of(row) for row in conn.execute(sql, params).fetchall()])

    async def cache_get(self, key: str, *, now: float) -> str | None:
        """The cached value under `key`, unless expired."""

        def get(conn: Conn) -> str | None:
            row = conn.execute(f"SELECT value, expires_at FROM {self._s}.cache WHERE key = %s", (key,)).fetchone()
            if row is None or (row[1] is not None and row[1] <= now):
                return None
            return self._sealing.open_text(str(row[0]), f"cache:{key}")

        return await self._run("read", get)

    async def cache_put(self, key: str, value: str, *, expires_at: float | None, now: float) -> None:
        """Insert or replace `key`, and drop up to 100 expired entries in the same transaction."""
        value = self._sealing.seal_text(value, f"cache:{key}")

        def put(conn: Conn) -> None:
            with conn.transaction():
                conn.execute(_CACHE_PUT.format(s=self._s), (key, value, expires_at, now))
                conn.execute(_CACHE_PURGE.format(s=self._s), (now,))

        await self._run("write to", put)

    async def data_version(self) -> int:
        """The sum of the change counter: it moves with every committed write, from any process, and only then."""

        def read(conn: Conn) -> int:
            row = conn.execute(f"SELECT COALESCE(SUM(n), 0)::bigint FROM {self._s}.changes").fetchone()
            return int(row[0]) if row is not None else 0

        return await self._run("read", read)

    async def reserve_spend(
        self, entry: SpendEntry, checks: Sequence[SpendCheck], *, purge_before: float | None = None
    ) -> SpendBlocked | None:
        """Check the ceilings and insert the reservation in one transaction holding the keys' advisory locks.

        Reservations from any number of processes under a common key are serialized: each reads the sums only
        after every reservation before it committed.
        """
        return await self._run(
            "write to", lambda conn: _postgres_spend.reserve(conn, self._s, entry, checks, purge_before)
        )

    async def settle_spend(self, entry: SpendEntry) -> None:
        """Replace the reservation's rows by the settled entry, in one transaction."""
        await self._run("write to", lambda conn: _postgres_spend.settle(conn, self._s, entry))

    async def release_spend(self, entry_id: str) -> None:
        """Delete the reservation's rows."""
        await self._run("write to", lambda conn: _postgres_spend.release(conn, self._s, entry_id))

    async def spend_totals(self, key: str, since: float, *, now: float) -> SpendTotals:
        """Settled spend and live reservations under `key` since `since`."""
        return await self._run("read", lambda conn: _postgres_spend.totals(conn, self._s, key, since, now))

    async def add_review(self, item: ReviewItem) -> None:
        """Insert a new review item and commit it; an id already in the store is a `StoreError`."""
        item = self._sealing.seal_review(item)
        await self._run("write to", lambda conn: _postgres_reviews.insert(conn, self._s, item))

    async def get_review(self, review_id: str) -> ReviewItem:
        """The review item with this id; `ReviewError` when there is none."""
        item = await self._run("read", lambda conn: _postgres_reviews.get(conn, self._s, review_id))
        return self._sealing.open_review(item)

    async def list_reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Pending items by priority then age, then decided ones, most recent decision first."""
        items = await self._run("read", lambda conn: _postgres_reviews.select(conn, self._s, status, run_id, limit))
        return [self._sealing.open_review(item) for item in items]

    async def decide_review(
        self, review_id: str, decision: Decision, *, by: str, note: str = "", at: float
    ) -> ReviewItem:
        """Decide a pending item with a conditional update: the first decision wins, across processes."""
        sealed, opened = self._sealing.seal_note(review_id, note), self._sealing.open_review
        return await self._run(
            "write to",
            lambda conn: _postgres_reviews.decide(conn, self._s, review_id, decision, by, sealed, at, opened),
        )

    def close(self) -> None:
        """Close the pool's connections (waiting at most 5 seconds for calls still running)."""
        self._pool.close(timeout=5.0)
