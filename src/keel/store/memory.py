"""An in-process store for tests and throwaway runs: same semantics as SQLite, nothing on disk."""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Sequence

from keel.errors import ResumeError, ReviewError, StoreError, UnknownRunError
from keel.journal import Event, EventKind
from keel.result import RunStatus
from keel.store._sealing import sealing_for
from keel.store.base import (
    Decision,
    ReviewItem,
    ReviewStatus,
    RunRecord,
    SpendBlocked,
    SpendCheck,
    SpendEntry,
    SpendTotals,
    already_decided,
    moved_on,
    not_paused,
)
from keel.store.rollups import RollupRow, increments, resolution

__all__ = ["MemoryStore"]


class MemoryStore:
    """Runs and journals in dictionaries; lost when the process ends.

    Args:
        encryption_key: the journal key (or keys, newest first) that seals content as the other stores do, so
            code and tests behave alike on every store; None reads ``KEEL_JOURNAL_KEY``.
    """

    url = "memory://"

    def __init__(self, *, encryption_key: str | Sequence[str] | None = None) -> None:
        self._sealing = sealing_for(encryption_key)
        self._runs: dict[str, RunRecord] = {}
        self._events: dict[str, list[Event]] = {}
        self._spend: dict[str, SpendEntry] = {}
        self._spend_lock = threading.Lock()  # threads that share one store (run_sync in threads) reserve one at a time
        self._reviews: dict[str, ReviewItem] = {}
        self._reviews_lock = threading.Lock()  # of two threads deciding one item, exactly one wins
        self._version = 0  # moves on every change, for `data_version`
        self._cache: dict[str, tuple[str, float | None]] = {}

    async def create_run(self, run: RunRecord, first: Event) -> None:
        """Insert a new run with its first event."""
        if run.run_id in self._runs:
            raise StoreError(f"run {run.run_id!r} already exists")
        self._runs[run.run_id] = self._sealing.seal_run(dataclasses.replace(run))
        self._events[run.run_id] = [self._sealing.seal_event(first)]
        self._version += 1

    async def finish_run(self, run: RunRecord, last: Event) -> None:
        """Append the last event and write the run's outcome."""
        if run.run_id not in self._runs:
            raise UnknownRunError(f"no run {run.run_id!r} in the in-memory store")
        await self.append(last)
        started_at = self._runs[run.run_id].started_at  # like SQLite, finishing never rewrites the start time
        kept = dataclasses.replace(run, started_at=started_at, output=copy.deepcopy(run.output))
        self._runs[run.run_id] = self._sealing.seal_run(kept)

    async def append(self, event: Event) -> None:
        """Append one event; `(run_id, seq)` must be new, as in every store."""
        journal = self._events.setdefault(event.run_id, [])
        if journal and journal[-1].seq >= event.seq:
            raise StoreError(f"event {event.run_id}/{event.seq} already recorded: the journal is append-only")
        journal.append(self._sealing.seal_event(event))
        self._version += 1

    async def resume_run(self, run_id: str, first: Event, *, paused: RunStatus) -> RunRecord:
        """Claim a paused run (status `paused` → running) and append `first`."""
        with self._reviews_lock:  # two threads resuming one run: the check and the claim are one step
            run = self._runs.get(run_id)
            if run is None:
                raise UnknownRunError(f"no run {run_id!r} in the in-memory store")
            if run.status is not paused:
                raise ResumeError(not_paused(run_id, run.status.value, paused))
            if self._events[run_id][-1].seq != first.seq - 1:
                raise ResumeError(moved_on(run_id))
            await self.append(first)
            run.status, run.finished_at = RunStatus.RUNNING, None
        return self._sealing.open_run(run)

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; `UnknownRunError` when there is none."""
        try:
            return self._sealing.open_run(self._runs[run_id])
        except KeyError:
            raise UnknownRunError(f"no run {run_id!r} in the in-memory store") from None

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
        """Most recent runs first, optionally filtered, from the `offset`-th match."""
        runs = sorted(self._matching(agent, session_id, status, since), key=lambda r: r.started_at, reverse=True)
        return [self._sealing.open_run(r) for r in runs[offset : offset + limit]]

    async def count_runs(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        status: RunStatus | None = None,
        since: float | None = None,
    ) -> int:
        """How many runs `list_runs` would find with these filters and no limit."""
        return len(self._matching(agent, session_id, status, since))

    def _matching(
        self, agent: str | None, session_id: str | None, status: RunStatus | None, since: float | None
    ) -> list[RunRecord]:
        return [
            r
            for r in self._runs.values()
            if (agent is None or r.agent == agent)
            and (session_id is None or r.session_id == session_id)
            and (status is None or r.status == status)
            and (since is None or r.started_at >= since)
        ]

    async def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """The journal of a run in order: the events after seq `after`, at most `limit` of them."""
        await self.get_run(run_id)
        found = [e for e in self._events.get(run_id, ()) if e.seq > after]
        return [self._sealing.open_event(e) for e in (found if limit is None else found[:limit])]

    async def recent_events(self, kind: EventKind, *, limit: int = 100, since: float | None = None) -> list[Event]:
        """The latest events of one kind across all runs, newest first."""
        found = [
            e
            for journal in self._events.values()
            for e in journal
            if e.kind is kind and (since is None or e.ts >= since)
        ]
        found.sort(key=lambda e: e.ts, reverse=True)
        return [self._sealing.open_event(e) for e in found[:limit]]

    async def rollups(
        self, *, since: float | None = None, metrics: Sequence[str] | None = None, bucket_s: int = 60
    ) -> list[RollupRow]:
        """Rollup counters, computed from the journals (an in-memory store is small), as SQLite's read them."""
        span = resolution(since, bucket_s, time.time())
        start = None if since is None else int(since // span) * span
        sums: dict[tuple[int, str, str, str, str], list[float]] = {}
        for run_id, journal in self._events.items():
            agent = self._runs[run_id].agent if run_id in self._runs else ""
            for event in journal:
                if start is not None and event.ts < start:
                    continue
                bucket = int(event.ts // bucket_s) * bucket_s if bucket_s > 0 else 0
                for inc in increments(event):
                    if metrics is not None and inc.metric not in metrics:
                        continue
                    total = sums.setdefault((bucket, agent, inc.metric, inc.label1, inc.label2), [0, 0, 0, 0.0, 0.0])
                    for i, amount in enumerate((inc.n, inc.tokens_in, inc.tokens_out, inc.cost_usd, inc.value)):
                        total[i] += amount
        return [RollupRow(*key, int(t[0]), int(t[1]), int(t[2]), float(t[3]), float(t[4])) for key, t in sums.items()]

    async def cache_get(self, key: str, *, now: float) -> str | None:
        """The cached value under `key`, unless expired."""
        found = self._cache.get(key)
        if found is None or (found[1] is not None and found[1] <= now):
            return None
        return self._sealing.open_text(found[0], f"cache:{key}")

    async def cache_put(self, key: str, value: str, *, expires_at: float | None, now: float) -> None:
        """Insert or replace `key`, dropping expired entries."""
        for old in [k for k, (_, until) in self._cache.items() if until is not None and until <= now][:100]:
            del self._cache[old]
        self._cache[key] = (self._sealing.seal_text(value, f"cache:{key}"), expires_at)

    async def data_version(self) -> int:
        """A number that changes whenever the store changed."""
        return self._version

    async def reserve_spend(
        self, entry: SpendEntry, checks: Sequence[SpendCheck], *, purge_before: float | None = None
    ) -> SpendBlocked | None:
        """Check the ceilings and insert the reservation, under the store's lock."""
        with self._spend_lock:
            if purge_before is not None:
                for entry_id, old in list(self._spend.items()):
                    expired = old.expires_at is not None and old.expires_at <= entry.ts
                    if (old.ts <= purge_before or expired) and set(old.keys) & set(entry.keys):
                        del self._spend[entry_id]
            for check in checks:
                window = self._totals(check.key, check.since, entry.ts)
                requested = entry.nano_usd if check.unit == "usd" else entry.tokens
                if window.settled(check.unit) + window.reserved(check.unit) + requested > check.ceiling:
                    return SpendBlocked(check, window)
            self._spend[entry.entry_id] = entry
            self._version += 1
            return None

    async def settle_spend(self, entry: SpendEntry) -> None:
        """Replace the reservation by the settled entry."""
        with self._spend_lock:
            self._spend[entry.entry_id] = entry
            self._version += 1

    async def release_spend(self, entry_id: str) -> None:
        """Forget the reservation."""
        with self._spend_lock:
            self._spend.pop(entry_id, None)
            self._version += 1

    async def spend_totals(self, key: str, since: float, *, now: float) -> SpendTotals:
        """Settled spend and live reservations under `key` since `since`."""
        with self._spend_lock:
            return self._totals(key, since, now)

    def _totals(self, key: str, since: float, now: float) -> SpendTotals:
        settled_usd = settled_tokens = reserved_usd = reserved_tokens = 0
        for entry in self._spend.values():
            if key not in entry.keys or entry.ts <= since:
                continue
            if entry.expires_at is None:
                settled_usd += entry.nano_usd
                settled_tokens += entry.tokens
            elif entry.expires_at > now:
                reserved_usd += entry.nano_usd
                reserved_tokens += entry.tokens
        return SpendTotals(settled_usd, settled_tokens, reserved_usd, reserved_tokens)

    async def add_review(self, item: ReviewItem) -> None:
        """Insert a new review item (a copy: later changes to the caller's arguments do not reach the queue)."""
        with self._reviews_lock:
            if item.id in self._reviews:
                raise StoreError(f"review item {item.id!r} already exists")
            kept = dataclasses.replace(item, arguments=copy.deepcopy(item.arguments))
            self._reviews[item.id] = self._sealing.seal_review(kept)
            self._version += 1

    async def get_review(self, review_id: str) -> ReviewItem:
        """The review item with this id; `ReviewError` when there is none."""
        with self._reviews_lock:
            return self._opened(self._get(review_id))

    async def list_reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Pending items by priority then age, then decided ones, most recent decision first."""
        with self._reviews_lock:
            items = [
                self._opened(item)
                for item in self._reviews.values()
                if (status is None or item.status == status) and (run_id is None or item.run_id == run_id)
            ]
        items.sort(key=_review_order)
        return items[:limit]

    async def decide_review(
        self, review_id: str, decision: Decision, *, by: str, note: str = "", at: float
    ) -> ReviewItem:
        """Decide a pending item under the store's lock: the first decision wins."""
        with self._reviews_lock:
            item = self._get(review_id)
            if item.status != "pending":
                raise ReviewError(already_decided(self._opened(item), decision))
            note = self._sealing.seal_note(review_id, note)
            decided = dataclasses.replace(item, status=decision, decided_at=at, decided_by=by, note=note)
            self._reviews[review_id] = decided
            self._version += 1
            return self._opened(decided)

    def _opened(self, item: ReviewItem) -> ReviewItem:
        """A copy of a kept item, its content opened (later changes to the copy do not reach the queue)."""
        return self._sealing.open_review(_copy(item))

    def _get(self, review_id: str) -> ReviewItem:
        try:
            return self._reviews[review_id]
        except KeyError:
            raise ReviewError(f"no review item {review_id!r} in the in-memory store") from None

    def close(self) -> None:
        """Nothing to release."""


def _copy(item: ReviewItem) -> ReviewItem:
    return dataclasses.replace(item, arguments=copy.deepcopy(item.arguments))


def _review_order(item: ReviewItem) -> tuple[int, float, float, str]:
    # As the SQLite store orders them: pending by priority then age, then decided, most recent decision first.
    if item.status == "pending":
        return (0, -item.priority, item.created_at, item.id)
    return (1, 0, -(item.decided_at or 0.0), item.id)
