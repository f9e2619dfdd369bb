"""The rollups' SQL for the PostgreSQL store (table ``rollups``); what they count is `keel.store.rollups`.

The increments are SQLite's, computed by the same function (`_sqlite_rollups.rows_of`), so every store agrees. They
are upserts written in the transaction that appends their event; the run's agent is read from the ``runs`` row in
the same statement (``INSERT … SELECT … ON CONFLICT DO UPDATE``), so events never carry it twice. The upserts of one
event are sorted by key, so two transactions counting into the same rows lock them in the same order and cannot
deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from keel.journal import Event, EventKind, Phase
from keel.store._postgres_pool import Conn
from keel.store._sqlite_rollups import rows_of
from keel.store.rollups import COUNTED_KINDS, METRICS, resolution

__all__ = ["UPSERT", "backfill", "rows", "select", "upsert"]

UPSERT = (
    "INSERT INTO {s}.rollups AS r (span, metric, bucket, agent, label1, label2, n, tokens_in, tokens_out, cost_usd, "
    "value) SELECT %s, %s, %s, agent, %s, %s, %s, %s, %s, %s, %s FROM {s}.runs WHERE run_id = %s "
    "ON CONFLICT (span, metric, bucket, agent, label1, label2) DO UPDATE SET "
    "n = r.n + excluded.n, tokens_in = r.tokens_in + excluded.tokens_in, "
    "tokens_out = r.tokens_out + excluded.tokens_out, cost_usd = r.cost_usd + excluded.cost_usd, "
    "value = r.value + excluded.value"
)


def rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """The `UPSERT` parameters counting `events`, at every span, in key order (most events count nowhere)."""
    found = [row for event in events for row in rows_of(event)]
    # span, metric, bucket, label1, label2: one transaction's rows share their run, hence their agent.
    return sorted(found, key=lambda row: (row[0], row[1], row[2], row[3], row[4]))


def upsert(conn: Conn, s: str, counted: Sequence[tuple[Any, ...]]) -> None:
    """Apply the increments `counted` (from `rows`) inside the caller's transaction."""
    if counted:
        with conn.cursor() as cursor:
            cursor.executemany(UPSERT.format(s=s), counted)


def backfill(conn: Conn, s: str) -> None:
    """Count every event already journaled (a store migrated from version 3), inside the migration's transaction."""
    counted = sorted(kind.value for kind in COUNTED_KINDS)
    with conn.cursor(name="keel_rollups_backfill") as cursor:  # server-side: a long journal is read 1000 at a time
        cursor.execute(
            "SELECT run_id, seq, kind, phase, payload, tokens_in, tokens_out, cost_usd, latency_ms, ts "
            f"FROM {s}.events WHERE kind = ANY(%s)",
            (counted,),
        )
        while batch := cursor.fetchmany(1000):
            events = [
                Event(r[0], r[1], EventKind(r[2]), Phase(r[3]), json.loads(r[4]), r[5], r[6], r[7], r[8], r[9])
                for r in batch
            ]
            upsert(conn, s, rows(events))


def select(
    s: str, since: float | None, metrics: Sequence[str] | None, bucket_s: int, now: float
) -> tuple[str, tuple[Any, ...]]:
    """The query summing rollups into buckets of `bucket_s` seconds (0: totals), at the span `resolution` picks.

    The same query as `_sqlite_rollups.select`; its rows are read by `_sqlite_rollups.row_of`.
    """
    span = resolution(since, bucket_s, now)
    params: list[Any] = [span, list(METRICS if metrics is None else metrics)]
    where = "span = %s AND metric = ANY(%s)"
    if since is not None:
        where += " AND bucket >= %s"
        params.append(int(since // span) * span)
    grouped = f"(bucket / {int(bucket_s)}) * {int(bucket_s)}" if bucket_s > 0 else "0"
    sql = (
        f"SELECT {grouped} AS b, agent, metric, label1, label2, SUM(n), SUM(tokens_in), SUM(tokens_out), "
        f"SUM(cost_usd), SUM(value) FROM {s}.rollups WHERE {where} GROUP BY b, agent, metric, label1, label2"
    )
    return sql, tuple(params)
