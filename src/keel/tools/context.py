"""What a tool can know about the call it serves: who calls, and a read-only view of the store.

Nothing a tool can reach from its `ToolContext` changes how the run is governed: the context is frozen, and its
store is a `StoreView` with reads only — a tool cannot append to a journal, decide a review item, release a
spending reservation or finish a run through it. (A tool is the agent owner's own code, and Python is no sandbox:
this keeps governance out of reach of a tool's ordinary means, not of code set on getting around it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.journal import Event, EventKind
    from keel.result import RunStatus
    from keel.store.base import ReviewItem, ReviewStatus, RunRecord, Store

__all__ = ["StoreView", "ToolContext"]


class StoreView:
    """The reads of a `Store`, and nothing that writes: what a tool gets as `ToolContext.store`."""

    __slots__ = ("_store", "url")

    def __init__(self, store: Store) -> None:
        """View `store` (a view of a view views the same store)."""
        self._store: Store = store._store if isinstance(store, StoreView) else store
        self.url: str = store.url
        """Where the store lives."""

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; `UnknownRunError` when there is none."""
        return await self._store.get_run(run_id)

    async def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """A run's journal in order (events after seq `after`, at most `limit`)."""
        return await self._store.events(run_id, after=after, limit=limit)

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
        """Most recent runs first, optionally filtered."""
        return await self._store.list_runs(
            limit=limit, agent=agent, session_id=session_id, status=status, since=since, offset=offset
        )

    async def recent_events(self, kind: EventKind, *, limit: int = 100, since: float | None = None) -> list[Event]:
        """The latest events of one kind across all runs, newest first."""
        return await self._store.recent_events(kind, limit=limit, since=since)

    async def get_review(self, review_id: str) -> ReviewItem:
        """The review item with this id."""
        return await self._store.get_review(review_id)

    async def list_reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Review items, in the order a reviewer works through them."""
        return await self._store.list_reviews(status=status, run_id=run_id, limit=limit)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Passed to a tool that declares a parameter annotated `ToolContext`; never part of its schema."""

    run_id: str
    """The run making the call."""
    call_id: str
    """The model's id for this call."""
    idempotency_key: str
    """Stable for this call across retries and resumes: hand it to side-effecting APIs so a repeat is a no-op."""
    tool_name: str
    agent: str
    session_id: str | None
    attempt: int
    """1 for the first attempt."""
    store: StoreView
    """The run's store, read-only (journals, runs, review items); a `Store` given here is wrapped in a view."""

    def __post_init__(self) -> None:
        if not isinstance(self.store, StoreView):
            object.__setattr__(self, "store", StoreView(self.store))
