"""What the dashboard's JSON API returns: one pydantic model per page, also what the HTML pages render.

Every text that came from a model, a tool or a user (tasks, answers, arguments, results, reasons) is redacted
(`redact_pii`) and cut to a bounded length before it is put in one of these, so neither the API nor a page can
show a secret in clear or be made slow by a huge payload.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from keel.observe.tools import ToolCallRecord

__all__ = [
    "AgentSpend",
    "AgentsPage",
    "Kpis",
    "LimitStatus",
    "Overview",
    "Point",
    "ReviewEntry",
    "ReviewsPage",
    "RunDetail",
    "RunSummary",
    "RunsPage",
    "TraceEntry",
    "UsageRow",
]


class Point(BaseModel):
    """One bucket of a time series."""

    ts: float = Field(description="The bucket's start, Unix time.")
    value: float


class Kpis(BaseModel):
    """Headline figures over the overview's window."""

    runs_started: int
    runs_finished: int
    by_status: dict[str, int] = Field(description="Run segments ended in the window, by status.")
    error_rate: float = Field(description="Share of ended runs that failed (a pause for a person is not an end).")
    escalation_rate: float = Field(description="Escalations per run started.")
    cache_hit_rate: float = Field(description="Cache hits per call (hits + model calls + tool calls).")
    loop_breaks: int = Field(description="Loops broken or escalated (nudges not counted).")
    budget_refusals: int
    p50_latency_s: float | None = Field(description="Median working time of ended runs (from histogram buckets).")
    p95_latency_s: float | None
    model_calls: int
    tool_calls: int
    tokens: int
    cost_usd: float
    reviews_pending: int


class LimitStatus(BaseModel):
    """One configured spending ceiling (as last journaled by a run) and what its window holds now."""

    key: str = Field(description="The ledger key: agent:NAME, session:ID, user:ID or global.")
    ceiling: str = Field(description="per_hour_usd, per_day_usd, per_hour_tokens or per_day_tokens.")
    limit: float
    spent: float = Field(description="Settled spend in the rolling window, in the ceiling's unit.")
    reserved: float = Field(description="Live reservations in the window.")
    used: float = Field(description="(spent + reserved) / limit.")


class RunSummary(BaseModel):
    """One row of the runs list."""

    run_id: str
    agent: str
    task: str
    model: str
    status: str
    session_id: str | None
    started_at: float
    finished_at: float | None
    steps: int
    tokens: int
    cost_usd: float
    reason: str | None


class Overview(BaseModel):
    """The overview page."""

    window: str
    generated_at: float
    kpis: Kpis
    runs_per_minute: list[Point] = Field(description="Runs started per minute over the last hour.")
    cost_per_hour: list[Point] = Field(description="USD per hour over the last 24 hours.")
    cost_per_day: list[Point] = Field(description="USD per day over the last 30 days.")
    hourly_limit_usd: float | None = Field(description="The global per_hour_usd ceiling, if one is configured.")
    limits: list[LimitStatus]
    recent_runs: list[RunSummary]


class RunsPage(BaseModel):
    """A page of the runs list, most recent first."""

    runs: list[RunSummary]
    total: int = Field(description="Runs matching the filters.")
    offset: int
    limit: int
    filters: dict[str, str]


class TraceEntry(BaseModel):
    """One journal event as the decision trace shows it."""

    seq: int
    kind: str
    phase: str
    ts: float
    summary: str
    details: list[str]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    reason: str | None = Field(description="The model's stated reason (decisions).")
    alternatives: list[str] = Field(description="What it could have chosen: the tools offered, routes, plans.")
    informed_by: list[int] = Field(description="Seqs of the events whose data informed the decision.")


class UsageRow(BaseModel):
    """Tokens and money of one phase (or model) of a run."""

    name: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class ReviewEntry(BaseModel):
    """One review item."""

    id: str
    run_id: str
    agent: str
    reason: str
    action: str
    arguments: str
    priority: int
    created_at: float
    status: str
    decided_at: float | None
    decided_by: str | None
    note: str


class RunDetail(BaseModel):
    """A run page: the run, its status report, decision trace, tool calls and token use by phase."""

    run: RunSummary
    output: str | None
    report: dict[str, object] | None
    trace: list[TraceEntry]
    events_total: int | None = Field(description="Events in the journal; null when longer than the 5,000 read.")
    next_after: int | None = Field(description="Pass as ?after= for the next page of the trace; null at the end.")
    tool_calls: list[ToolCallRecord] = Field(description="Every attempt and cached result, as `keel tools` lists them.")
    by_phase: list[UsageRow]
    by_model: list[UsageRow]
    reviews: list[ReviewEntry]
    resumable: bool = Field(description="Escalated and every review item decided: it can be resumed.")


class ReviewsPage(BaseModel):
    """The review queue: pending items first (priority, then oldest), then recent decisions."""

    items: list[ReviewEntry]
    pending: int


class AgentSpend(BaseModel):
    """One agent's runs and spend over the window."""

    agent: str
    runs: int
    failed: int
    escalations: int
    model_calls: int
    tokens: int
    cost_usd: float
    last_run_at: float | None


class AgentsPage(BaseModel):
    """Agents and their spend."""

    window: str
    agents: list[AgentSpend]
