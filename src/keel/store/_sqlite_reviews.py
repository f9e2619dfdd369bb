"""The review queue's SQL for the SQLite store (table ``reviews``, migration 3).

Deciding is first-wins across processes: `decide` runs inside a transaction the caller opened with
``BEGIN IMMEDIATE`` and changes the row only ``WHERE status = 'pending'``. SQLite serializes writers, so of two
processes deciding the same item one updates the row and the other changes nothing, then reads the winner's
decision in the same transaction to say who was first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from pydantic_core import to_json

from keel.errors import ReviewError
from keel.store.base import Decision, ReviewItem, ReviewStatus, already_decided

__all__ = ["INSERT", "SELECT_ONE", "decide", "item_from_row", "row_of", "select"]

_COLUMNS = "id, run_id, agent, reason, action, arguments, priority, created_at, status, decided_at, decided_by, note"

INSERT = f"INSERT INTO reviews ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
SELECT_ONE = f"SELECT {_COLUMNS} FROM reviews WHERE id = ?"

# Pending first (highest priority, then oldest: the order to work in), then decided, most recent decision first.
_ORDER = (
    "ORDER BY status != 'pending', "
    "CASE WHEN status = 'pending' THEN -priority ELSE 0 END, "
    "CASE WHEN status = 'pending' THEN created_at ELSE -decided_at END, id"
)


def row_of(item: ReviewItem) -> tuple[Any, ...]:
    """The row that stores `item` (arguments as JSON)."""
    return (
        item.id,
        item.run_id,
        item.agent,
        item.reason,
        item.action,
        to_json(item.arguments, fallback=str).decode(),
        item.priority,
        item.created_at,
        item.status,
        item.decided_at,
        item.decided_by,
        item.note,
    )


def item_from_row(row: tuple[Any, ...]) -> ReviewItem:
    """The item a row of ``SELECT {_COLUMNS}`` holds."""
    return ReviewItem(
        id=row[0],
        run_id=row[1],
        agent=row[2],
        reason=row[3],
        action=row[4],
        arguments=json.loads(row[5]),
        priority=row[6],
        created_at=row[7],
        status=row[8],
        decided_at=row[9],
        decided_by=row[10],
        note=row[11],
    )


def select(status: ReviewStatus | None, run_id: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The query and parameters listing items, filtered by status and run."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {_COLUMNS} FROM reviews {where} {_ORDER} LIMIT ?", (*params, limit)


def decide(
    conn: sqlite3.Connection,
    review_id: str,
    decision: Decision,
    by: str,
    note: str,
    at: float,
    where: str,
    opened: Callable[[ReviewItem], ReviewItem],
) -> ReviewItem:
    """Decide the pending item `review_id`; `ReviewError` when it is unknown or already decided.

    `where` names the store in the unknown-id message; `opened` reads the item as the store's sealing does.
    """
    changed = conn.execute(
        "UPDATE reviews SET status = ?, decided_at = ?, decided_by = ?, note = ? WHERE id = ? AND status = 'pending'",
        (decision, at, by, note, review_id),
    ).rowcount
    row = conn.execute(SELECT_ONE, (review_id,)).fetchone()
    if row is None:
        raise ReviewError(f"no review item {review_id!r} in the store at {where}")
    item = opened(item_from_row(row))
    if changed == 0:
        raise ReviewError(already_decided(item, decision))
    return item
