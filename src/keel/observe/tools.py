"""The tool-call log (O2): every attempt of every tool call, with its figures, read from the journal.

Arguments and results are shown redacted (`redact_pii`: personal data and secrets replaced by their kind) and
results cut to a length, because this log is for operators' eyes and terminals, not for replay: the journal
keeps the calls as they were.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from keel.guardrails.pii import redact_pii
from keel.journal import Event, EventKind
from keel.observe.usage import MAX_RUNS
from keel.store.base import Store

__all__ = [
    "REDACT_CHARS",
    "ToolCallRecord",
    "ToolStats",
    "preview",
    "redacted_payload",
    "tool_call_record",
    "tool_calls",
    "tool_stats",
]

RESULT_CHARS = 200
"""How much of a result (or error) a record keeps."""


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One attempt of one tool call."""

    ts: float
    """When it ended (Unix time)."""
    run_id: str
    agent: str
    tool: str
    call_id: str
    attempt: int
    outcome: str
    """ok, error, timeout, abandoned, unavailable (not run), interrupted (its process died)."""
    latency_ms: float
    cost_usd: float
    arguments: str
    """The arguments as JSON, redacted."""
    result: str
    """The result, or the error, redacted and cut to `RESULT_CHARS`."""
    cache_hit: bool = False
    """The result came from a cache (a ``cache_hit`` event naming the tool): the tool did not run."""
    seq: int = 0
    """The event's position in its run's journal."""


REDACT_CHARS = 8192
"""How much of a text is redacted before it is cut for display: bounded work on a huge payload, and more than any
display shows, so a secret cut at this boundary is never on screen."""


def preview(value: Any, limit: int) -> str:
    """`value` as operators may see it: JSON for structures, personal data and secrets redacted, cut to `limit`.

    Redacted before it is cut, so a secret is never shown half (a cut one no longer looks like a secret).
    """
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = redact_pii(text[: max(REDACT_CHARS, limit)])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redacted_payload(value: Any, depth: int = 0) -> Any:
    """A copy of a payload with every string redacted (and cut to `REDACT_CHARS`), for views that render it.

    Bounded: at most 100 items per list or mapping, 6 levels deep; what is deeper or further shows as ``…``.
    """
    if isinstance(value, str):
        return redact_pii(value[:REDACT_CHARS])
    if depth >= 6:
        return "…"
    if isinstance(value, dict):
        return {key: redacted_payload(item, depth + 1) for key, item in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        return [redacted_payload(item, depth + 1) for item in value[:100]]
    return value


async def tool_calls(
    store: Store,
    *,
    since: float | None = None,
    agent: str | None = None,
    tool: str | None = None,
    outcome: str | None = None,
    limit: int = 100,
) -> list[ToolCallRecord]:
    """The most recent tool-call attempts that match, newest first (at most `limit`)."""
    found: list[ToolCallRecord] = []
    for run in await store.list_runs(limit=MAX_RUNS, agent=agent, since=since):
        for event in await store.events(run.run_id):
            record = tool_call_record(event, run.agent)
            if record is None or (tool and record.tool != tool) or (outcome and record.outcome != outcome):
                continue
            if since is None or event.ts >= since:
                found.append(record)
    found.sort(key=lambda record: record.ts, reverse=True)
    return found[:limit]


def tool_call_record(event: Event, agent: str) -> ToolCallRecord | None:
    """`event` as the tool-call log shows it (redacted, cut), or None when it is not a tool call or a cached one."""
    p = event.payload
    cached = event.kind is EventKind.CACHE_HIT and "tool" in p
    if event.kind is not EventKind.TOOL_CALLED and not cached:
        return None
    status = "ok" if cached else str(p.get("outcome"))
    shown = p.get("result") if status == "ok" else p.get("error")
    return ToolCallRecord(
        ts=event.ts,
        run_id=event.run_id,
        agent=agent,
        tool=str(p.get("tool")),
        call_id=str(p.get("call_id")),
        attempt=int(p.get("attempt", 0 if cached else 1)),
        outcome=status,
        latency_ms=event.latency_ms,
        cost_usd=event.cost_usd,
        arguments=preview(p.get("arguments", {}), RESULT_CHARS),
        result=preview(shown or "", RESULT_CHARS),
        cache_hit=cached,
        seq=event.seq,
    )


@dataclass(slots=True)
class ToolStats:
    """Per tool: attempts, failures, cache hits, latency percentiles and cost."""

    tool: str
    attempts: int = 0
    failures: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        """Median latency of the attempts that ran."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p95_ms(self) -> float:
        """95th percentile latency of the attempts that ran."""
        if len(self.latencies_ms) < 2:
            return self.p50_ms
        return statistics.quantiles(self.latencies_ms, n=20, method="inclusive")[-1]


def tool_stats(records: list[ToolCallRecord]) -> list[ToolStats]:
    """Per-tool figures over `records`, busiest tool first."""
    stats: dict[str, ToolStats] = {}
    for record in records:
        entry = stats.setdefault(record.tool, ToolStats(record.tool))
        if record.cache_hit:  # served from the cache: not an attempt, and its latency is not the tool's
            entry.cache_hits += 1
            continue
        entry.attempts += 1
        entry.failures += record.outcome != "ok"
        entry.cost_usd += record.cost_usd
        if record.outcome != "unavailable":
            entry.latencies_ms.append(record.latency_ms)
    return sorted(stats.values(), key=lambda s: -s.attempts)
