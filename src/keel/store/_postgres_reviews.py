"""The review queue's SQL for the PostgreSQL store (table ``reviews``); rows map to items as in SQLite.

Deciding is first-wins across processes with no explicit lock: the decision is an ``UPDATE … WHERE status =
'pending'``. Of two transactions deciding one item, the second waits for the first's row lock, then (READ COMMITTED)
re-checks its condition against the committed row, finds it decided, and changes nothing; it then reads the winner's
decision to say who was first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keel.errors import ReviewError
from keel.store._postgres_pool import Conn
from keel.store._sqlite_reviews import item_from_row, row_of
from keel.store.base import Decision, ReviewItem, ReviewStatus, already_decided

__all__ = ["NoSuchReview", "decide", "get", "insert", "select"]

_COLUMNS = "id, run_id, agent, reason, action, arguments, priority, created_at, status, decided_at, decided_by, note"

# Pending first (highest priority, then oldest: the order to work in), then decided, most recent decision first.
_ORDER = (
    "ORDER BY status <> 'pending', "
    "CASE WHEN status = 'pending' THEN -priority ELSE 0 END, "
    "CASE WHEN status = 'pending' THEN created_at ELSE -decided_at END, id"
)


class NoSuchReview(LookupError):
    """No item with this id; the store turns it into `ReviewError` naming itself."""


def insert(conn: Conn, s: str, item: ReviewItem) -> None:
    """Insert a new item (an id already there is a unique violation)."""
    conn.execute(f"INSERT INTO {s}.reviews ({_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})", row_of(item))


def get(conn: Conn, s: str, review_id: str) -> ReviewItem:
    """The item with this id; `NoSuchReview` when there is none."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM {s}.reviews WHERE id = %s", (review_id,)).fetchone()
    if row is None:
        raise NoSuchReview(review_id)
    return item_from_row(row)


def select(conn: Conn, s: str, status: ReviewStatus | None, run_id: str | None, limit: int) -> list[ReviewItem]:
    """Items filtered by status and run, in the order a reviewer works through them."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM {s}.reviews {where} {_ORDER} LIMIT %s", (*params, limit)).fetchall()
    return [item_from_row(row) for row in rows]


def decide(
    conn: Conn,
    s: str,
    review_id: str,
    decision: Decision,
    by: str,
    note: str,
    at: float,
    opened: Callable[[ReviewItem], ReviewItem],
) -> ReviewItem:
    """Decide the pending item `review_id`; `ReviewError` when already decided, `NoSuchReview` when unknown.

    `opened` reads an item as the store's sealing does (the winner's decision is named in the error).
    """
    with conn.transaction():
        row = conn.execute(
            f"UPDATE {s}.reviews SET status = %s, decided_at = %s, decided_by = %s, note = %s "
            f"WHERE id = %s AND status = 'pending' RETURNING {_COLUMNS}",
            (decision, at, by, note, review_id),
        ).fetchone()
        if row is not None:
            return opened(item_from_row(row))
        raise ReviewError(already_decided(opened(get(conn, s, review_id)), decision))
