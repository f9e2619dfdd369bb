"""The `Store` protocol: where journals and runs live, embedded (SQLite) or server-grade (later PostgreSQL).

Every backend gives the same guarantees: events are append-only and committed one by one (a process that
dies between steps loses nothing it had recorded), `(run_id, seq)` is unique, and a run's row never disagrees
with its journal: the row is created with the first event and closed with the last, in one transaction each.
The spend ledger's check-and-reserve is one transaction too, serialized across processes, so concurrent runs
can never together cross a spending limit. Deciding a review item is a conditional update in one such
transaction: of two people (or processes) deciding the same item at once, exactly one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from keel.journal import Event, EventKind
from keel.result import RunStatus
from keel.store.rollups import RollupRow

__all__ = [
    "REVIEW_STATUSES",
    "Decision",
    "ReviewItem",
    "ReviewStatus",
    "RunRecord",
    "SpendBlocked",
    "SpendCheck",
    "SpendEntry",
    "SpendTotals",
    "Store",
    "already_decided",
    "moved_on",
    "not_paused",
]


@dataclass(slots=True)
class RunRecord:
    """One row of the runs table: who ran what, how it ended, and its totals."""

    run_id: str
    agent: str
    task: str
    model: str
    status: RunStatus = RunStatus.RUNNING
    session_id: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    output: Any = None
    """The final (or best partial) output, JSON-serializable."""
    report: dict[str, Any] | None = None
    """The status report as a dict (see `keel.result.RunReport`)."""
    reason: str | None = None
    """Why the run ended, in one line."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class SpendEntry:
    """Money and tokens charged to one or more ledger keys: a live reservation, or spend once settled.

    Money is counted in integer nano-dollars (1e-9 USD) so that sums compare exactly against ceilings.
    """

    entry_id: str
    run_id: str
    keys: tuple[str, ...]
    """Every ledger key the spend counts under (one row per key in SQL stores)."""
    ts: float
    """When it was reserved; it counts in every window that contains this instant, settled or not."""
    nano_usd: int
    tokens: int
    expires_at: float | None = None
    """A reservation stops counting at this instant (its process died); None once settled."""


SpendUnit = Literal["usd", "tokens"]


@dataclass(frozen=True, slots=True)
class SpendCheck:
    """A ceiling to hold: spend under `key` with ``ts > since``, in `unit`, must stay at or below `ceiling`."""

    key: str
    since: float
    unit: SpendUnit
    ceiling: int
    """Nano-dollars or tokens."""


@dataclass(frozen=True, slots=True)
class SpendTotals:
    """What a window holds: settled spend and live (unexpired, unsettled) reservations. Money in nano-dollars."""

    settled_nano_usd: int = 0
    settled_tokens: int = 0
    reserved_nano_usd: int = 0
    reserved_tokens: int = 0

    def settled(self, unit: SpendUnit) -> int:
        """Settled spend in `unit`."""
        return self.settled_nano_usd if unit == "usd" else self.settled_tokens

    def reserved(self, unit: SpendUnit) -> int:
        """Live reservations in `unit`."""
        return self.reserved_nano_usd if unit == "usd" else self.reserved_tokens


@dataclass(frozen=True, slots=True)
class SpendBlocked:
    """A reservation was not made: `check` would have been crossed; `totals` is what its window held."""

    check: SpendCheck
    totals: SpendTotals


ReviewStatus = Literal["pending", "approved", "denied"]
"""Where a review item stands: waiting for a person, or decided (for good) one way or the other."""
Decision = Literal["approved", "denied"]
"""What a person decided."""
REVIEW_STATUSES: tuple[ReviewStatus, ...] = ("pending", "approved", "denied")


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """An action a run wants to take that a person must approve or deny first (G4), as the queue keeps it.

    Once decided an item never changes again: `status`, `decided_at`, `decided_by` and `note` record the first
    (and only) decision.
    """

    id: str
    """Short and typeable (``rev-`` and 12 hex digits): people copy it into ``keel review approve``."""
    run_id: str
    agent: str
    reason: str
    """Why the run stopped for a person, in one line (the trigger: confidence, cost, severity, taint, guard)."""
    action: str
    """The proposed action: a tool's name, or ``"answer"`` for a final answer held back."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """The proposed tool call's arguments (or the held answer), JSON-serializable."""
    priority: int = 0
    """Higher first: the queue lists pending items by priority, then oldest first."""
    created_at: float = 0.0
    status: ReviewStatus = "pending"
    decided_at: float | None = None
    decided_by: str | None = None
    note: str = ""
    """The decider's note (empty when none was given)."""


def not_paused(run_id: str, status: str, paused: RunStatus) -> str:
    """The message for a resume that found the run no longer `paused`. Shared by every store."""
    return (
        f"run {run_id} is {status}, not {paused.value}: it cannot be resumed (if it was {paused.value} a moment ago, "
        "another process has resumed it)"
    )


def moved_on(run_id: str) -> str:
    """The message for a resume whose run gained events since the journal was read. Shared by every store."""
    return (
        f"run {run_id} moved on while it was being resumed: another process resumed it first, or the process "
        "running it is still alive"
    )


def already_decided(item: ReviewItem, attempted: str) -> str:
    """The message for a decision that lost: who decided `item` first, how and when. Shared by every store."""
    when = datetime.fromtimestamp(item.decided_at or 0).strftime("%Y-%m-%d %H:%M:%S")
    note = f" (note: {item.note})" if item.note else ""
    return (
        f"review item {item.id} was already {item.status} by {item.decided_by} at {when}{note}; "
        f"it cannot be {attempted} now"
    )


@runtime_checkable
class Store(Protocol):
    """Persistence of runs, their journals, the spend ledger of hard spending limits, and the review queue."""

    url: str
    """Where the store lives, for messages (``sqlite:///…`` or ``memory://``)."""

    async def create_run(self, run: RunRecord, first: Event) -> None:
        """Insert a new run together with its first event (``run_started``), atomically."""
        ...

    async def finish_run(self, run: RunRecord, last: Event) -> None:
        """Append a run's last event (``run_finished``) and write its status, totals and output, atomically."""
        ...

    async def append(self, event: Event) -> None:
        """Append one event to its run's journal and commit it."""
        ...

    async def resume_run(self, run_id: str, first: Event, *, paused: RunStatus) -> RunRecord:
        """Claim a paused run to continue it, and return its row.

        Atomically: if its status is still `paused`, it is set running again and `first` (its resumed
        ``run_started``) is appended.

        Of two processes resuming one run at once, exactly one gets it; the other gets a `ResumeError`, as
        does a run that is not `paused` any more. `UnknownRunError` when there is no such run.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; `UnknownRunError` when there is none."""
        ...

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
        """Most recent runs first, optionally filtered (`since`: started at or after this Unix time).

        `offset` skips that many matching runs (paging).
        """
        ...

    async def count_runs(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
    ) -> int:
        """How many runs `list_runs` would find with these filters and no limit."""
        ...

    async def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """The journal of a run in order; `UnknownRunError` when there is no such run.

        Only the events with ``seq > after``, and at most `limit` of them (paging a long journal).
        """
        ...

    async def recent_events(self, kind: EventKind, *, limit: int = 100, since: float | None = None) -> list[Event]:
        """The latest events of one kind across all runs (at or after `since`), newest first."""
        ...

    async def rollups(
        self, *, since: float | None = None, metrics: Sequence[str] | None = None, bucket_s: int = 60
    ) -> list[RollupRow]:
        """The rollup counters (`keel.store.rollups`) since `since`, optionally of some metrics only.

        Summed per bucket of `bucket_s` seconds (a multiple of 60), agent, metric and labels; ``bucket_s=0`` sums
        them all (every row's bucket is 0). The window starts at the beginning of the span `rollups.resolution`
        reads: the minute `since` falls in for windows up to two days, the hour or the day for longer ones.
        """
        ...

    async def cache_get(self, key: str, *, now: float) -> str | None:
        """The cached value under `key`, or None when there is none or it expired before `now`."""
        ...

    async def cache_put(self, key: str, value: str, *, expires_at: float | None, now: float) -> None:
        """Store `value` under `key` until `expires_at` (None: until replaced); drops some expired entries."""
        ...

    async def data_version(self) -> int:
        """A number that changes whenever anything in the store changed, in any process: cheap, for polling."""
        ...

    async def reserve_spend(
        self, entry: SpendEntry, checks: Sequence[SpendCheck], *, purge_before: float | None = None
    ) -> SpendBlocked | None:
        """Insert the reservation `entry` if every check still holds with it added, atomically across processes.

        A check holds when settled spend + live reservations (``expires_at > entry.ts``) + the entry stay at or
        below its ceiling. Returns None when the entry was inserted, else the first check that would be crossed
        (nothing is inserted). In the same transaction, rows of the entry's keys with ``ts <= purge_before``
        and expired reservations of those keys are deleted: they no longer count in any window.
        """
        ...

    async def settle_spend(self, entry: SpendEntry) -> None:
        """Replace the reservation ``entry.entry_id`` by `entry` (settled, ``expires_at=None``), atomically.

        The entry is written even if the reservation expired and was purged meanwhile: money spent is recorded.
        """
        ...

    async def release_spend(self, entry_id: str) -> None:
        """Delete a reservation that was not spent; releasing an unknown or purged one does nothing."""
        ...

    async def spend_totals(self, key: str, since: float, *, now: float) -> SpendTotals:
        """Spend under `key` with ``ts > since``: settled, and reservations still live at `now`."""
        ...

    async def add_review(self, item: ReviewItem) -> None:
        """Insert a new review item; an id already in the store is a `StoreError`."""
        ...

    async def get_review(self, review_id: str) -> ReviewItem:
        """The review item with this id; `ReviewError` when there is none."""
        ...

    async def list_reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Review items, optionally filtered, in the order a reviewer works through them.

        Pending items come first, highest priority first, then oldest first; decided items follow, most
        recently decided first.
        """
        ...

    async def decide_review(
        self, review_id: str, decision: Decision, *, by: str, note: str = "", at: float
    ) -> ReviewItem:
        """Decide a pending item, atomically and first-wins across processes; returns the decided item.

        `ReviewError` when there is no such item, or when it was already decided (the message names the first
        decision, who made it and when); nothing is changed then.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
