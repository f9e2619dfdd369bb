"""The spend ledger's SQL for the PostgreSQL store (table ``spend``).

Check-and-reserve is serialized per ledger key with transaction-scoped advisory locks
(``pg_advisory_xact_lock``), taken before the sums are read and held until the commit. Every reservation that
touches a key — checking its window or counting under it — takes that key's lock first, so of two reservations
against one ceiling, from any processes, the second reads its sums only after the first committed (each
statement of a READ COMMITTED transaction sees every commit made before it started). Locks are taken in one
statement, in key order, so two reservations sharing several keys cannot deadlock; reservations under unrelated
keys never wait for each other. That is why this store does not use SERIALIZABLE: no retries, no false
conflicts between keys, and a bounded wait (``lock_timeout``).

Settling and releasing take the locks of the entry's keys too. Readers would not need them (an entry's rows change
in one transaction, seen whole or not at all), but a purge deletes rows of the same entries: sharing the locks keeps
the two from locking one entry's rows in opposite orders and deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.store._postgres_pool import Conn, lock_key
from keel.store.base import SpendBlocked, SpendCheck, SpendEntry, SpendTotals

__all__ = ["release", "reserve", "settle", "totals"]

_TOTALS = (
    "SELECT "
    "COALESCE(SUM(nano_usd) FILTER (WHERE expires_at IS NULL), 0), "
    "COALESCE(SUM(tokens) FILTER (WHERE expires_at IS NULL), 0), "
    "COALESCE(SUM(nano_usd) FILTER (WHERE expires_at IS NOT NULL), 0), "
    "COALESCE(SUM(tokens) FILTER (WHERE expires_at IS NOT NULL), 0) "
    "FROM {s}.spend WHERE key = %s AND ts > %s AND (expires_at IS NULL OR expires_at > %s)"
)
_INSERT = (
    "INSERT INTO {s}.spend (entry_id, key, run_id, ts, nano_usd, tokens, expires_at) VALUES (%s, %s, %s, %s, %s, %s, "
    "%s) ON CONFLICT (entry_id, key) DO UPDATE SET run_id = excluded.run_id, ts = excluded.ts, "
    "nano_usd = excluded.nano_usd, tokens = excluded.tokens, expires_at = excluded.expires_at"
)


def totals(conn: Conn, s: str, key: str, since: float, now: float) -> SpendTotals:
    """Settled spend and reservations live at `now` under `key`, with ``ts > since`` (uses ``spend_by_key``)."""
    row = conn.execute(_TOTALS.format(s=s), (key, since, now)).fetchone()
    assert row is not None  # an aggregate always returns its row
    return SpendTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def reserve(
    conn: Conn, s: str, entry: SpendEntry, checks: Sequence[SpendCheck], purge_before: float | None
) -> SpendBlocked | None:
    """Lock the keys, check every ceiling with `entry` added, insert it when all hold; purge what no window counts."""
    with conn.transaction():
        _lock(conn, s, (*entry.keys, *(c.key for c in checks)))
        if purge_before is not None and entry.keys:
            conn.execute(
                f"DELETE FROM {s}.spend WHERE key = ANY(%s) AND (ts <= %s OR expires_at <= %s)",
                (list(entry.keys), purge_before, entry.ts),
            )
        seen: dict[tuple[str, float], SpendTotals] = {}  # an hour and a day check of one key: two windows, not four
        for check in checks:
            window = seen.get((check.key, check.since))
            if window is None:
                window = seen[check.key, check.since] = totals(conn, s, check.key, check.since, entry.ts)
            requested = entry.nano_usd if check.unit == "usd" else entry.tokens
            if window.settled(check.unit) + window.reserved(check.unit) + requested > check.ceiling:
                return SpendBlocked(check, window)  # the purge above is committed: it is right either way
        _insert(conn, s, entry)
    return None


def settle(conn: Conn, s: str, entry: SpendEntry) -> None:
    """Replace the reservation's rows by the settled `entry` (written even if the reservation was purged)."""
    with conn.transaction():
        _lock(conn, s, entry.keys)
        conn.execute(
            f"DELETE FROM {s}.spend WHERE entry_id = %s AND NOT key = ANY(%s)", (entry.entry_id, list(entry.keys))
        )
        _insert(conn, s, entry)


def release(conn: Conn, s: str, entry_id: str) -> None:
    """Delete a reservation's rows (none: nothing happens)."""
    with conn.transaction():
        keys = [str(row[0]) for row in conn.execute(f"SELECT key FROM {s}.spend WHERE entry_id = %s", (entry_id,))]
        if keys:
            _lock(conn, s, keys)
            conn.execute(f"DELETE FROM {s}.spend WHERE entry_id = %s", (entry_id,))


def _lock(conn: Conn, s: str, keys: Sequence[str]) -> None:
    """Take the advisory locks of ledger `keys` until the transaction ends: in one statement, in one global order."""
    if keys:
        locks = sorted({lock_key("keel", "spend", s, key) for key in keys})
        conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", (locks,))


def _insert(conn: Conn, s: str, entry: SpendEntry) -> None:
    """Write `entry` as one row per key (replacing that key's row of the same entry, if any)."""
    rows = [
        (entry.entry_id, key, entry.run_id, entry.ts, entry.nano_usd, entry.tokens, entry.expires_at)
        for key in entry.keys
    ]
    if rows:
        with conn.cursor() as cursor:
            cursor.executemany(_INSERT.format(s=s), rows)
