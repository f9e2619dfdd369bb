"""The overview and agents pages, from the store's rollups: a handful of indexed queries at any journal size."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from keel.journal import EventKind
from keel.observe.tools import preview
from keel.store.base import RunRecord, SpendUnit, Store
from keel.store.rollups import RollupRow, quantile

from .models import AgentsPage, AgentSpend, Kpis, LimitStatus, Overview, Point, RunSummary

__all__ = ["WINDOWS", "agents_page", "overview", "run_summary"]

WINDOWS: dict[str, float] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
"""The windows the overview and agents pages offer."""

_SPEND = ("model_calls", "tool_calls")
_LIMITS_SEEN = 200  # run_started events read for the configured limits: the latest few hundred runs


def run_summary(run: RunRecord) -> RunSummary:
    """A runs-list row: the task and reason redacted and cut."""
    return RunSummary(
        run_id=run.run_id,
        agent=run.agent,
        task=preview(run.task, 200),
        model=run.model,
        status=run.status.value,
        session_id=run.session_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        steps=run.steps,
        tokens=run.total_tokens,
        cost_usd=run.cost_usd,
        reason=None if run.reason is None else preview(run.reason, 300),
    )


async def overview(store: Store, window: str, *, now: float | None = None) -> Overview:
    """The overview over `window` (a key of `WINDOWS`), with its charts, limits and latest runs."""
    now = time.time() if now is None else now
    totals = await store.rollups(since=now - WINDOWS[window], bucket_s=0)
    per_minute = await store.rollups(since=now - 3600, metrics=["runs_started"], bucket_s=60)
    per_hour = await store.rollups(since=now - 86400, metrics=_SPEND, bucket_s=3600)
    per_day = await store.rollups(since=now - 30 * 86400, metrics=_SPEND, bucket_s=86400)
    limits = await _limits(store, now)
    hourly = [s.limit for s in limits if s.ceiling == "per_hour_usd" and s.key == "global"]  # the chart is everyone's
    pending = await store.list_reviews(status="pending", limit=10_000)
    recent = await store.list_runs(limit=10)
    return Overview(
        window=window,
        generated_at=now,
        kpis=_kpis(totals, len(pending)),
        runs_per_minute=_series(per_minute, now - 3600, now, 60, lambda r: r.n),
        cost_per_hour=_series(per_hour, now - 86400, now, 3600, lambda r: r.cost_usd),
        cost_per_day=_series(per_day, now - 30 * 86400, now, 86400, lambda r: r.cost_usd),
        hourly_limit_usd=min(hourly) if hourly else None,
        limits=limits,
        recent_runs=[run_summary(r) for r in recent],
    )


def _kpis(rows: list[RollupRow], reviews_pending: int) -> Kpis:
    n: dict[str, int] = defaultdict(int)
    by_status: dict[str, int] = defaultdict(int)
    latency: dict[str, int] = defaultdict(int)
    tokens, cost = 0, 0.0
    for row in rows:
        n[row.metric] += row.n
        if row.metric == "runs_finished":
            by_status[row.label1] += row.n
        elif row.metric == "run_latency":
            latency[row.label1] += row.n
        elif row.metric == "loops" and row.label1 != "nudge":
            n["loop_breaks"] += row.n
        tokens += row.tokens_in + row.tokens_out if row.metric == "model_calls" else 0
        cost += row.cost_usd if row.metric in _SPEND else 0.0
    finished, started = n["runs_finished"], n["runs_started"]
    ended = finished - by_status.get("escalated", 0)  # a pause is not an end: the run is counted when it ends
    calls = n["cache_hits"] + n["model_calls"] + n["tool_calls"]
    return Kpis(
        runs_started=started,
        runs_finished=finished,
        by_status=dict(sorted(by_status.items())),
        error_rate=by_status.get("failed", 0) / ended if ended > 0 else 0.0,
        escalation_rate=min(1.0, n["escalations"] / started) if started else 0.0,
        cache_hit_rate=n["cache_hits"] / calls if calls else 0.0,
        loop_breaks=n["loop_breaks"],
        budget_refusals=n["budget_refusals"],
        p50_latency_s=quantile(latency, 0.5),
        p95_latency_s=quantile(latency, 0.95),
        model_calls=n["model_calls"],
        tool_calls=n["tool_calls"],
        tokens=tokens,
        cost_usd=cost,
        reviews_pending=reviews_pending,
    )


def _series(
    rows: list[RollupRow], start: float, end: float, step: int, figure: Callable[[RollupRow], float]
) -> list[Point]:
    """Every bucket from `start` to `end`, zeros included, so a chart's x axis is time, not the data's gaps."""
    sums: dict[int, float] = defaultdict(float)
    for row in rows:
        sums[row.bucket] += figure(row)
    first = int(start // step) * step
    return [Point(ts=ts, value=sums.get(ts, 0.0)) for ts in range(first, int(end) + 1, step)]


async def _limits(store: Store, now: float) -> list[LimitStatus]:
    """The agent and global spending limits runs last journaled, with what each window holds now (the ledger's)."""
    latest: dict[str, dict[str, object]] = {}
    for event in await store.recent_events(EventKind.RUN_STARTED, limit=_LIMITS_SEEN):
        for limit in event.payload.get("limits") or ():
            key = str(limit.get("key")) if isinstance(limit, dict) else ""
            if key == "global" or key.startswith("agent:"):  # per-session and per-user keys name people
                latest.setdefault(key, limit)
    found: list[LimitStatus] = []
    for key, limit in sorted(latest.items()):
        for ceiling in ("per_hour_usd", "per_day_usd", "per_hour_tokens", "per_day_tokens"):
            value = limit.get(ceiling)
            if not isinstance(value, int | float) or value <= 0:
                continue
            window = 3600.0 if "hour" in ceiling else 86400.0
            held = await store.spend_totals(key, now - window, now=now)
            unit: SpendUnit = "usd" if ceiling.endswith("usd") else "tokens"
            scale = 1e-9 if unit == "usd" else 1.0
            spent, reserved = held.settled(unit) * scale, held.reserved(unit) * scale
            found.append(
                LimitStatus(
                    key=key,
                    ceiling=ceiling,
                    limit=float(value),
                    spent=spent,
                    reserved=reserved,
                    used=(spent + reserved) / value,
                )
            )
    return found


async def agents_page(store: Store, window: str, *, now: float | None = None) -> AgentsPage:
    """Every agent with runs in `window`: runs, failures, escalations, calls, tokens and spend, costliest first."""
    now = time.time() if now is None else now
    rows = await store.rollups(since=now - WINDOWS[window], bucket_s=0)
    agents: dict[str, AgentSpend] = {}
    for row in rows:
        spend = agents.setdefault(
            row.agent,
            AgentSpend(
                agent=row.agent,
                runs=0,
                failed=0,
                escalations=0,
                model_calls=0,
                tokens=0,
                cost_usd=0.0,
                last_run_at=None,
            ),
        )
        if row.metric == "runs_started":
            spend.runs += row.n
        elif row.metric == "runs_finished" and row.label1 == "failed":
            spend.failed += row.n
        elif row.metric == "escalations":
            spend.escalations += row.n
        elif row.metric == "model_calls":
            spend.model_calls += row.n
            spend.tokens += row.tokens_in + row.tokens_out
        if row.metric in _SPEND:
            spend.cost_usd += row.cost_usd
    for spend in agents.values():
        latest = await store.list_runs(limit=1, agent=spend.agent)
        spend.last_run_at = latest[0].started_at if latest else None
    ranked = sorted(agents.values(), key=lambda a: (-a.cost_usd, a.agent))
    return AgentsPage(window=window, agents=ranked)
