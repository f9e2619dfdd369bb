"""The `Store` protocol: where journals and runs live, embedded (SQLite) or server-grade (later PostgreSQL).

Every backend gives the same guarantees: events are append-only and committed one by one (a process that
dies between steps loses nothing it had recorded), `(run_id, seq)` is unique, and a run's row never disagrees
with its journal: the row is created with the first event and closed with the last, in one transaction each.
The spend ledger's check-and-reserve is one transaction too, serialized across processes, so concurrent runs
can never together cross a spending limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from keel.journal import Event
from keel.result import RunStatus

__all__ = ["RunRecord", "SpendBlocked", "SpendCheck", "SpendEntry", "SpendTotals", "Store"]


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


@runtime_checkable
class Store(Protocol):
    """Persistence of runs, their journals, and the spend ledger of hard spending limits."""

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
    ) -> list[RunRecord]:
        """Most recent runs first, optionally filtered."""
        ...

    async def events(self, run_id: str) -> list[Event]:
        """The journal of a run in order; `UnknownRunError` when there is no such run."""
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

    def close(self) -> None:
        """Release connections."""
        ...
