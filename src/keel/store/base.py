"""The `Store` protocol: where journals and runs live, embedded (SQLite) or server-grade (later PostgreSQL).

Every backend gives the same guarantees: events are append-only and committed one by one (a process that
dies between steps loses nothing it had recorded), `(run_id, seq)` is unique, and a run's row never disagrees
with its journal: the row is created with the first event and closed with the last, in one transaction each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from keel.journal import Event
from keel.result import RunStatus

__all__ = ["RunRecord", "Store"]


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


@runtime_checkable
class Store(Protocol):
    """Persistence of runs and their journals."""

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

    def close(self) -> None:
        """Release connections."""
        ...
