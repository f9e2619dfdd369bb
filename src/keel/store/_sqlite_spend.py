"""The spend ledger's SQL for the SQLite store (table ``spend``, migration 2).

Each function runs inside a transaction the caller opened with ``BEGIN IMMEDIATE``: SQLite then holds the
database's write lock from the first read to the commit, so no other process can reserve between the sums
being read and the reservation being inserted. That is what makes check-and-reserve atomic across processes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from keel.store.base import SpendBlocked, SpendCheck, SpendEntry, SpendTotals

__all__ = ["insert_entry", "reserve", "totals"]

_TOTALS = (
    "SELECT "
    "COALESCE(SUM(CASE WHEN expires_at IS NULL THEN nano_usd END), 0), "
    "COALESCE(SUM(CASE WHEN expires_at IS NULL THEN tokens END), 0), "
    "COALESCE(SUM(CASE WHEN expires_at IS NOT NULL THEN nano_usd END), 0), "
    "COALESCE(SUM(CASE WHEN expires_at IS NOT NULL THEN tokens END), 0) "
    "FROM spend WHERE key = ? AND ts > ? AND (expires_at IS NULL OR expires_at > ?)"
)


def totals(conn: sqlite3.Connection, key: str, since: float, now: float) -> SpendTotals:
    """Settled spend and reservations live at `now` under `key`, with ``ts > since`` (uses ``spend_by_key``)."""
    row = conn.execute(_TOTALS, (key, since, now)).fetchone()
    return SpendTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def reserve(
    conn: sqlite3.Connection, entry: SpendEntry, checks: Sequence[SpendCheck], purge_before: float | None
) -> SpendBlocked | None:
    """Check every ceiling with `entry` added; insert it when all hold. Purge what no window counts any more."""
    if purge_before is not None:
        for key in entry.keys:
            conn.execute("DELETE FROM spend WHERE key = ? AND ts <= ?", (key, purge_before))
            conn.execute(
                "DELETE FROM spend WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?", (key, entry.ts)
            )
    seen: dict[tuple[str, float], SpendTotals] = {}  # an hour and a day check of one key read two windows, not four
    for check in checks:
        window = seen.get((check.key, check.since))
        if window is None:
            window = seen[check.key, check.since] = totals(conn, check.key, check.since, entry.ts)
        requested = entry.nano_usd if check.unit == "usd" else entry.tokens
        if window.settled(check.unit) + window.reserved(check.unit) + requested > check.ceiling:
            return SpendBlocked(check, window)
    insert_entry(conn, entry)
    return None


def insert_entry(conn: sqlite3.Connection, entry: SpendEntry) -> None:
    """Write `entry` as one row per key."""
    conn.executemany(
        "INSERT INTO spend (entry_id, key, run_id, ts, nano_usd, tokens, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (entry.entry_id, key, entry.run_id, entry.ts, entry.nano_usd, entry.tokens, entry.expires_at)
            for key in entry.keys
        ],
    )
