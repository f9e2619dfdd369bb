"""The rollups' SQL for the SQLite store (table ``rollups``, migration 4); what they count is `keel.store.rollups`.

Increments are upserts written in the transaction that appends their event; the run's agent is read from the
``runs`` row in the same statement, so events never carry it twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from keel.journal import Event, EventKind, Phase
from keel.store.rollups import COUNTED_KINDS, METRICS, SPANS, Increment, RollupRow, increments, resolution

__all__ = ["UPSERT", "backfill", "row_of", "rows_of", "select"]

UPSERT = (
    "INSERT INTO rollups (span, metric, bucket, agent, label1, label2, n, tokens_in, tokens_out, cost_usd, value) "
    "SELECT ?, ?, ?, agent, ?, ?, ?, ?, ?, ?, ? FROM runs WHERE run_id = ? "
    "ON CONFLICT (span, metric, bucket, agent, label1, label2) DO UPDATE SET "
    "n = n + excluded.n, tokens_in = tokens_in + excluded.tokens_in, tokens_out = tokens_out + excluded.tokens_out, "
    "cost_usd = cost_usd + excluded.cost_usd, value = value + excluded.value"
)


def rows_of(event: Event, counted: Sequence[Increment] | None = None) -> list[tuple[Any, ...]]:
    """The `UPSERT` parameters for `event`'s increments, at every span."""
    buckets = [(span, int(event.ts // span) * span) for span in SPANS]
    return [
        (span, c.metric, bucket, c.label1, c.label2, c.n, c.tokens_in, c.tokens_out, c.cost_usd, c.value, event.run_id)
        for c in (increments(event) if counted is None else counted)
        for span, bucket in buckets
    ]


def backfill(conn: sqlite3.Connection) -> None:
    """Count every event already journaled (a store migrated from version 3), inside the migration's transaction."""
    cursor = conn.execute(
        "SELECT run_id, seq, kind, phase, payload, tokens_in, tokens_out, cost_usd, latency_ms, ts FROM events "
        "WHERE kind IN (" + ", ".join("?" * len(_COUNTED)) + ")",
        _COUNTED,
    )
    while batch := cursor.fetchmany(1000):
        rows: list[tuple[Any, ...]] = []
        for r in batch:
            event = Event(r[0], r[1], EventKind(r[2]), Phase(r[3]), json.loads(r[4]), r[5], r[6], r[7], r[8], r[9])
            rows += rows_of(event)
        conn.executemany(UPSERT, rows)


_COUNTED = tuple(sorted(kind.value for kind in COUNTED_KINDS))


def select(
    since: float | None, metrics: Sequence[str] | None, bucket_s: int, now: float
) -> tuple[str, tuple[Any, ...]]:
    """The query summing rollups into buckets of `bucket_s` seconds (0: totals), at the span `resolution` picks."""
    span = resolution(since, bucket_s, now)
    wanted = tuple(METRICS if metrics is None else metrics)  # the key's second column: a range per metric
    params: list[Any] = [span, *wanted]
    where = f"span = ? AND metric IN ({', '.join('?' * len(wanted))})"
    if since is not None:
        where += " AND bucket >= ?"
        params.append(int(since // span) * span)
    grouped = f"(bucket / {int(bucket_s)}) * {int(bucket_s)}" if bucket_s > 0 else "0"
    sql = (
        f"SELECT {grouped} AS b, agent, metric, label1, label2, SUM(n), SUM(tokens_in), SUM(tokens_out), "
        f"SUM(cost_usd), SUM(value) FROM rollups WHERE {where} GROUP BY b, agent, metric, label1, label2"
    )
    return sql, tuple(params)


def row_of(row: tuple[Any, ...]) -> RollupRow:
    """A `RollupRow` from a row of `select`."""
    return RollupRow(int(row[0]), row[1], row[2], row[3], row[4], int(row[5]), int(row[6]), int(row[7]), row[8], row[9])
