"""Runs and their journals in the PostgreSQL store (tables ``runs`` and ``events``).

Rows map to records exactly as in SQLite (`_sqlite_rows`): the same columns, the same JSON text. Each function
takes a connection in autocommit mode and opens the transaction it needs; `s` is the store's quoted schema.

Resuming is a claim: the run's row is locked (``SELECT … FOR UPDATE``) before its status is read, so of two
processes resuming one run the second waits for the first to commit, then reads the run as running and is refused.
"""

from __future__ import annotations

from typing import Any

import psycopg

from keel.errors import ResumeError
from keel.journal import Event, EventKind
from keel.result import RunStatus
from keel.store import _postgres_rollups
from keel.store._postgres_pool import Conn
from keel.store._run_filter import run_filter
from keel.store._sqlite_rows import EVENT_COLUMNS, RUN_COLUMNS, event_of, event_row, run_record, run_row
from keel.store.base import RunRecord, moved_on, not_paused

__all__ = [
    "NoSuchRun",
    "append",
    "count_runs",
    "create_run",
    "events",
    "finish_run",
    "get_run",
    "list_runs",
    "recent_events",
    "resume_run",
]

_INSERT_RUN = f"INSERT INTO {{s}}.runs ({RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 15)})"
_INSERT_EVENT = f"INSERT INTO {{s}}.events ({EVENT_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})"
_FINISH = (
    "UPDATE {s}.runs SET status = %s, finished_at = %s, steps = %s, input_tokens = %s, output_tokens = %s, "
    "cost_usd = %s, output = %s, report = %s, reason = %s WHERE run_id = %s"
)


class NoSuchRun(LookupError):
    """The run has no row; the store turns it into `UnknownRunError` naming itself."""


def create_run(conn: Conn, s: str, run: RunRecord, first: Event) -> None:
    """Insert the run's row and its first event, with the rollups it moves, in one transaction."""
    with conn.transaction():
        conn.execute(_INSERT_RUN.format(s=s), run_row(run))
        conn.execute(_INSERT_EVENT.format(s=s), event_row(first))
        _postgres_rollups.upsert(conn, s, _postgres_rollups.rows([first]))


def finish_run(conn: Conn, s: str, run: RunRecord, last: Event) -> None:
    """Write the run's outcome and append the last event in one transaction; `NoSuchRun` (nothing written).

    The row is updated first, so its lock is taken before the event's: a process resuming the run meanwhile
    locks in the same order and waits, rather than deadlocking with this one.
    """
    row = run_row(run)
    with conn.transaction():
        if conn.execute(_FINISH.format(s=s), (*row[5:6], *row[7:], run.run_id)).rowcount == 0:
            raise NoSuchRun(run.run_id)
        conn.execute(_INSERT_EVENT.format(s=s), event_row(last))
        _postgres_rollups.upsert(conn, s, _postgres_rollups.rows([last]))


def append(conn: Conn, s: str, event: Event) -> None:
    """Append one event and commit it; with its rollups in the same transaction when it moves any."""
    counted = _postgres_rollups.rows([event])
    if counted:
        with conn.transaction():
            conn.execute(_INSERT_EVENT.format(s=s), event_row(event))
            _postgres_rollups.upsert(conn, s, counted)
    else:  # most events count nowhere: one statement, its own transaction
        conn.execute(_INSERT_EVENT.format(s=s), event_row(event))


def resume_run(conn: Conn, s: str, run_id: str, first: Event, paused: RunStatus) -> RunRecord:
    """Claim a paused run and append `first`, atomically; `ResumeError` when it is not paused or moved on."""
    with conn.transaction():
        found = conn.execute(f"SELECT status FROM {s}.runs WHERE run_id = %s FOR UPDATE", (run_id,)).fetchone()
        if found is None:
            raise NoSuchRun(run_id)
        if found[0] != paused.value:
            raise ResumeError(not_paused(run_id, found[0], paused))
        last = conn.execute(f"SELECT MAX(seq) FROM {s}.events WHERE run_id = %s", (run_id,)).fetchone()
        if last is None or last[0] != first.seq - 1:  # someone appended since the caller read the journal
            raise ResumeError(moved_on(run_id))
        try:
            with conn.transaction():  # a savepoint: the process still running this run appended `first.seq`
                conn.execute(_INSERT_EVENT.format(s=s), event_row(first))
        except psycopg.errors.UniqueViolation:
            raise ResumeError(moved_on(run_id)) from None
        row = conn.execute(
            f"UPDATE {s}.runs SET status = %s, finished_at = NULL WHERE run_id = %s RETURNING {RUN_COLUMNS}",
            (RunStatus.RUNNING.value, run_id),
        ).fetchone()
        _postgres_rollups.upsert(conn, s, _postgres_rollups.rows([first]))
    assert row is not None  # the row is locked: it cannot have gone
    return run_record(row)


def get_run(conn: Conn, s: str, run_id: str) -> RunRecord:
    """The run with this id; `NoSuchRun` when there is none."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM {s}.runs WHERE run_id = %s", (run_id,)).fetchone()
    if row is None:
        raise NoSuchRun(run_id)
    return run_record(row)


def list_runs(
    conn: Conn,
    s: str,
    *,
    limit: int,
    offset: int,
    agent: str | None,
    session_id: str | None,
    status: RunStatus | None,
    since: float | None,
) -> list[RunRecord]:
    """Most recent runs first (ties by id, so pages never overlap), filtered, from the `offset`-th match."""
    where, params = run_filter(agent, session_id, status, since, mark="%s")
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM {s}.runs {where} ORDER BY started_at DESC, run_id DESC LIMIT %s OFFSET %s",
        (*params, limit, offset),
    ).fetchall()
    return [run_record(row) for row in rows]


def count_runs(
    conn: Conn, s: str, *, agent: str | None, session_id: str | None, status: RunStatus | None, since: float | None
) -> int:
    """How many runs match the filters."""
    where, params = run_filter(agent, session_id, status, since, mark="%s")
    row = conn.execute(f"SELECT COUNT(*) FROM {s}.runs {where}", params).fetchone()
    return int(row[0]) if row is not None else 0


def events(conn: Conn, s: str, run_id: str, after: int, limit: int | None) -> list[Event]:
    """The events of a run with ``seq > after``, in order, at most `limit`; `NoSuchRun` when the run has no row."""
    if conn.execute(f"SELECT 1 FROM {s}.runs WHERE run_id = %s", (run_id,)).fetchone() is None:
        raise NoSuchRun(run_id)
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM {s}.events WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        (run_id, after, limit),  # LIMIT NULL: no limit
    ).fetchall()
    return [event_of(row) for row in rows]


def recent_events(conn: Conn, s: str, kind: EventKind, limit: int, since: float | None) -> list[Event]:
    """The latest events of one kind across all runs (at or after `since`), newest first."""
    params: list[Any] = [kind.value]
    where = "kind = %s"
    if since is not None:
        where += " AND ts >= %s"
        params.append(since)
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM {s}.events WHERE {where} ORDER BY ts DESC LIMIT %s", (*params, limit)
    ).fetchall()
    return [event_of(row) for row in rows]
