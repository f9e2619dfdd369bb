"""The cost report (C1–C5): spend by agent, model, tier and phase, what caches saved, and what tiering saved.

Read from the journal, like `usage_report`. The tiering saving compares each call of a tiered run with the same
tokens at the large tier's list price (its run's ``run_started`` records the tiers and their prices): what the
work would have cost on the single large model. A cheaper call that fell short (a tier escalation follows it) is
in the tiered cost but not in the baseline — the large model alone would not have made it — so escalations count
against the saving. Turns answered from a cache are not calls; cache savings are what ``cache_hit`` events say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keel.journal import Event, EventKind
from keel.observe.usage import MAX_RUNS
from keel.store.base import Store

__all__ = ["CostReport", "Spend", "cost_report"]


@dataclass(slots=True)
class Spend:
    """Money and tokens of a group of calls."""

    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, event: Event) -> None:
        """Count one call."""
        self.calls += 1
        self.tokens += event.tokens_in + event.tokens_out
        self.cost_usd += event.cost_usd


@dataclass(slots=True)
class CostReport:
    """Where the money went over a set of runs, and what tiering and caching saved."""

    runs: int = 0
    total: Spend = field(default_factory=Spend)
    """Model calls and paid tool calls."""
    by_agent: dict[str, Spend] = field(default_factory=dict)
    by_model: dict[str, Spend] = field(default_factory=dict)
    by_tier: dict[str, Spend] = field(default_factory=dict)
    """Tiered runs' model calls by tier; calls of untiered runs under ``"untiered"``."""
    by_phase: dict[str, Spend] = field(default_factory=dict)
    cache_hits: int = 0
    cache_saved_usd: float = 0.0
    cache_saved_tokens: int = 0
    tiered_cost_usd: float = 0.0
    """What the tiered runs' model calls cost."""
    tiered_baseline_usd: float = 0.0
    """The same calls' tokens at the large tier's list price."""
    truncated: bool = False
    """More runs matched than `MAX_RUNS`: the report covers the most recent ones."""

    @property
    def tiering_saving_usd(self) -> float:
        """Baseline minus actual, over the tiered runs."""
        return self.tiered_baseline_usd - self.tiered_cost_usd

    @property
    def tiering_saving_pct(self) -> float | None:
        """The saving as a share of the baseline (None without tiered calls)."""
        return self.tiering_saving_usd / self.tiered_baseline_usd if self.tiered_baseline_usd else None


def _large_price(started: Event) -> tuple[float, float] | None:
    tiers: Any = started.payload.get("tiers")
    price = tiers.get("large", {}).get("price") if isinstance(tiers, dict) else None
    return (float(price[0]), float(price[1])) if isinstance(price, list) and len(price) == 2 else None


async def cost_report(store: Store, *, since: float | None = None, agent: str | None = None) -> CostReport:
    """The cost report over the runs started at or after `since` (of one agent)."""
    runs = await store.list_runs(limit=MAX_RUNS + 1, agent=agent, since=since)
    report = CostReport(runs=min(len(runs), MAX_RUNS), truncated=len(runs) > MAX_RUNS)
    for run in runs[:MAX_RUNS]:
        events = await store.events(run.run_id)
        large = _large_price(events[0]) if events else None
        last_baseline = 0.0
        for event in events:
            if event.kind is EventKind.FALLBACK_USED and event.payload.get("tier"):
                report.tiered_baseline_usd -= last_baseline  # the call that fell short: not in a large-only run
                last_baseline = 0.0
            elif (added := _count(report, run.agent, event, large)) is not None:
                last_baseline = added  # the latest turn's share of the baseline
    return report


def _count(report: CostReport, agent: str, event: Event, large: tuple[float, float] | None) -> float | None:
    """Count one event; a model turn returns what it adds to the baseline (other events: None)."""
    p = event.payload
    if event.kind is EventKind.CACHE_HIT:
        report.cache_hits += 1
        report.cache_saved_usd += float(p.get("saved_cost_usd") or 0.0)
        report.cache_saved_tokens += int(p.get("saved_tokens") or 0)
        return None
    paid_tool = event.kind is EventKind.TOOL_CALLED and event.cost_usd > 0
    if event.kind is not EventKind.MODEL_CALLED and not paid_tool:
        return None
    if p.get("cached"):
        return 0.0  # a turn, but not a call: nothing in the baseline either
    for group, key in ((report.by_agent, agent), (report.by_phase, event.phase.value)):
        group.setdefault(key, Spend()).add(event)
    report.total.add(event)
    if paid_tool:
        report.by_model.setdefault(f"tool:{p.get('tool')}", Spend()).add(event)
        return None
    report.by_model.setdefault(str(p.get("model")), Spend()).add(event)
    report.by_tier.setdefault(str(p.get("tier") or "untiered"), Spend()).add(event)
    if large is None or not p.get("tier"):
        return 0.0
    baseline = (event.tokens_in * large[0] + event.tokens_out * large[1]) / 1_000_000
    report.tiered_cost_usd += event.cost_usd
    report.tiered_baseline_usd += baseline
    return baseline
