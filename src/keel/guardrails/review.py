"""The human review queue (G4): actions a run may not take until a person approves them.

A run that hits an escalation trigger (low confidence, high cost, a severe action, tainted input, an escalating
guard) pauses and `add`s an item; a person lists the queue, then approves or denies each item, from Python or
with ``keel review``. Items live in the store, so the queue is shared by every process using that store, and a
decision is final: of two people deciding one item at the same moment, in any processes, exactly one wins and
the other gets a `ReviewError` saying who was first.

```python
queue = ReviewQueue(open_store())
for item in queue.pending_sync():              # or: await queue.pending()
    queue.approve_sync(item.id, by="alice", note="ok")
```

The methods are coroutines, like the rest of Keel's store access; each has a ``*_sync`` twin for code without
an event loop (scripts, notebooks' plain cells, the CLI).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from keel.errors import ConfigError, ReviewError
from keel.store.base import REVIEW_STATUSES, Decision, ReviewItem, ReviewStatus, Store

__all__ = ["ReviewItem", "ReviewQueue", "ReviewStatus", "new_review_id"]

_T = TypeVar("_T")


def new_review_id() -> str:
    """A fresh review id: ``rev-`` and 12 hex digits, short enough to type, random enough never to repeat."""
    return f"rev-{secrets.token_hex(6)}"


class ReviewQueue:
    """The review items in `store`: add them (the pipeline does), list them, approve or deny them.

    Args:
        store: where the items live; every process that opens the same store sees the same queue.
        clock: seconds since the epoch, for ``created_at`` and ``decided_at``; tests pass a fake one.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def add(
        self,
        *,
        run_id: str,
        agent: str,
        reason: str,
        action: str,
        arguments: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> ReviewItem:
        """Put a pending item in the queue and return it (with its new id).

        Args:
            run_id: the paused run, which ``keel resume`` continues once the item is decided.
            agent: the run's agent.
            reason: why the run stopped for a person, in one line.
            action: the proposed tool's name, or ``"answer"`` for a held-back final answer.
            arguments: the proposed call's arguments (JSON-serializable).
            priority: higher is reviewed first.
        """
        for name, value in (("run_id", run_id), ("agent", agent), ("reason", reason), ("action", action)):
            _require_text(name, value)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ReviewError(f"priority must be a whole number, got {priority!r}")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise ReviewError(f"arguments must be a mapping of names to values, got {arguments!r}")
        item = ReviewItem(
            id=new_review_id(),
            run_id=run_id,
            agent=agent,
            reason=reason,
            action=action,
            arguments=dict(arguments or {}),
            priority=priority,
            created_at=self._clock(),
        )
        await self.store.add_review(item)
        return item

    async def get(self, review_id: str) -> ReviewItem:
        """The item with this id; `ReviewError` when there is none."""
        return await self.store.get_review(review_id)

    async def items(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Items of any status (or only `status`, only `run_id`'s): pending first, then recently decided."""
        if status is not None and status not in REVIEW_STATUSES:
            raise ReviewError(f"status must be one of {', '.join(map(repr, REVIEW_STATUSES))} or None, got {status!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ReviewError(f"limit must be a whole number above zero, got {limit!r}")
        return await self.store.list_reviews(status=status, run_id=run_id, limit=limit)

    async def pending(self, *, run_id: str | None = None, limit: int = 100) -> list[ReviewItem]:
        """Items waiting for a decision, highest priority first, then oldest first."""
        return await self.items(status="pending", run_id=run_id, limit=limit)

    async def approve(self, review_id: str, *, by: str, note: str = "") -> ReviewItem:
        """Approve a pending item as `by`; returns it decided. `ReviewError` when unknown or already decided."""
        return await self._decide(review_id, "approved", by, note)

    async def deny(self, review_id: str, *, by: str, note: str = "") -> ReviewItem:
        """Deny a pending item as `by`; returns it decided. `ReviewError` when unknown or already decided."""
        return await self._decide(review_id, "denied", by, note)

    async def _decide(self, review_id: str, decision: Decision, by: str, note: str) -> ReviewItem:
        if not isinstance(by, str) or not by.strip():
            raise ReviewError(f"a decision needs the name of who made it: `by` must be a non-empty name, got {by!r}")
        if not isinstance(note, str):
            raise ReviewError(f"note must be text, got {note!r}")
        return await self.store.decide_review(review_id, decision, by=by.strip(), note=note, at=self._clock())

    # --- for code without an event loop ---------------------------------------------------------------------------

    def add_sync(
        self,
        *,
        run_id: str,
        agent: str,
        reason: str,
        action: str,
        arguments: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> ReviewItem:
        """`add` for code without an event loop."""
        return _sync(
            self.add(run_id=run_id, agent=agent, reason=reason, action=action, arguments=arguments, priority=priority),
            "add",
        )

    def get_sync(self, review_id: str) -> ReviewItem:
        """`get` for code without an event loop."""
        return _sync(self.get(review_id), "get")

    def items_sync(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """`items` for code without an event loop."""
        return _sync(self.items(status=status, run_id=run_id, limit=limit), "items")

    def pending_sync(self, *, run_id: str | None = None, limit: int = 100) -> list[ReviewItem]:
        """`pending` for code without an event loop."""
        return _sync(self.pending(run_id=run_id, limit=limit), "pending")

    def approve_sync(self, review_id: str, *, by: str, note: str = "") -> ReviewItem:
        """`approve` for code without an event loop."""
        return _sync(self.approve(review_id, by=by, note=note), "approve")

    def deny_sync(self, review_id: str, *, by: str, note: str = "") -> ReviewItem:
        """`deny` for code without an event loop."""
        return _sync(self.deny(review_id, by=by, note=note), "deny")


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ReviewError(f"{name} must be a non-empty string, got {value!r}")


def _sync(coro: Coroutine[Any, Any, _T], name: str) -> _T:
    """Run `coro` on a fresh event loop; refused (and closed, never left un-awaited) inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ConfigError(f"{name}_sync() cannot be called from a running event loop; use `await queue.{name}(...)`")
