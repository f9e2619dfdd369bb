"""Token accounting over many runs (O3): totals, by phase, by model and by agent, read from the journal.

Every figure comes from the journal's events (`Usage.add_event`), the same reading a resumed run makes of its own
journal, so a report and the runs' own `RunResult.usage` never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.journal import EventKind
from keel.store.base import Store
from keel.usage import Usage

__all__ = ["UsageReport", "usage_report"]

MAX_RUNS = 10_000
"""Runs read by one report at most (the most recent): a bound on the work of one command."""


@dataclass(slots=True)
class UsageReport:
    """What a set of runs consumed."""

    runs: int = 0
    """How many runs the report covers."""
    total: Usage = field(default_factory=Usage)
    """Totals, with `Usage.by_phase` broken down by phase."""
    by_model: dict[str, Usage] = field(default_factory=dict)
    """Model calls per model (``"openai:gpt-4o-mini"``; a fallback model under its own name)."""
    by_agent: dict[str, Usage] = field(default_factory=dict)
    truncated: bool = False
    """True when more runs matched than `MAX_RUNS`: the report covers the most recent ones only."""


async def usage_report(
    store: Store, *, since: float | None = None, session_id: str | None = None, agent: str | None = None
) -> UsageReport:
    """Sum the usage of the runs that match: started at or after `since`, of a session, of an agent."""
    runs = await store.list_runs(limit=MAX_RUNS + 1, agent=agent, session_id=session_id, since=since)
    report = UsageReport(runs=min(len(runs), MAX_RUNS), truncated=len(runs) > MAX_RUNS)
    for run in runs[:MAX_RUNS]:
        per_agent = report.by_agent.setdefault(run.agent, Usage())
        for event in await store.events(run.run_id):
            report.total.add_event(event)
            per_agent.add_event(event)
            if event.kind is EventKind.MODEL_CALLED:
                model = str(event.payload.get("model") or run.model)  # a fallback model is named on its calls
                report.by_model.setdefault(model, Usage()).add_event(event)
    return report
