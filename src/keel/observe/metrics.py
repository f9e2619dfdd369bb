"""Prometheus metrics (O4), computed from the store's rollups: what every process recorded, not what one saw.

A scrape reads the rollups once (`keel.store.rollups`: counters kept with the journal) and the current status
counts, and renders them in the Prometheus text format with prometheus-client. Because the numbers come from the
store, any number of agent processes need no exporter of their own, a restart loses nothing, and the dashboard
and Prometheus never disagree. Counters are totals since the store began.

Example:
    ``keel dashboard`` serves them at ``/metrics``; in code, ``body = await metrics_text(store)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from keel.result import RunStatus
from keel.store.base import Store
from keel.store.rollups import LATENCY_BUCKETS_S, RollupRow

__all__ = ["CONTENT_TYPE", "MetricsSnapshot", "RollupCollector", "metrics_text", "snapshot"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format's content type."""


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What one scrape reports: all-time rollups, runs by current status, pending review items."""

    rollups: list[RollupRow]
    runs_by_status: dict[str, int]
    reviews_pending: int


async def snapshot(store: Store) -> MetricsSnapshot:
    """Read what a scrape needs from `store` (a few indexed queries, whatever the journal's size)."""
    rows = await store.rollups(bucket_s=0)
    by_status = {status.value: await store.count_runs(status=status) for status in RunStatus}
    pending = len(await store.list_reviews(status="pending", limit=100_000))
    return MetricsSnapshot(rows, by_status, pending)


async def metrics_text(store: Store) -> bytes:
    """The store's metrics in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RollupCollector(await snapshot(store)))
    return generate_latest(registry)


# (family name, help, rollup metric, label names for label1/label2): counters of `n`
_COUNTERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("keel_runs_started", "Runs started (resumptions not counted).", "runs_started", ()),
    (
        "keel_runs_finished",
        "Run segments ended, by status (a paused run ends a segment).",
        "runs_finished",
        ("status",),
    ),
    ("keel_model_calls", "Model calls, failed ones included, by model and phase.", "model_calls", ("model", "phase")),
    ("keel_model_errors", "Failed model calls, by model and whether retryable.", "model_errors", ("model", "kind")),
    ("keel_tool_calls", "Tool call attempts, by tool and outcome.", "tool_calls", ("tool", "outcome")),
    ("keel_tool_rejections", "Proposed tool calls refused before running.", "tool_rejections", ("tool",)),
    ("keel_escalations", "Runs paused for a person, by trigger.", "escalations", ("trigger",)),
    ("keel_budget_refusals", "Calls refused by a budget or spending limit.", "budget_refusals", ("limit",)),
    ("keel_loops", "Loops detected, by action taken (nudge, break, escalate) and kind.", "loops", ("action", "kind")),
    ("keel_cache_hits", "Calls answered from a cache.", "cache_hits", ()),
    ("keel_retries", "Retries scheduled, by tool or model.", "retries", ("target",)),
    ("keel_fallbacks", "Fallbacks and degradations, by the replaced tool or model.", "fallbacks", ("replaced",)),
    ("keel_guard_verdicts", "Guard verdicts, by guard and verdict.", "guard_verdicts", ("guard", "verdict")),
)


class RollupCollector(Collector):
    """A prometheus-client collector over one `MetricsSnapshot` (register it in a fresh registry per scrape)."""

    def __init__(self, snap: MetricsSnapshot) -> None:
        self._snap = snap
        self._by_metric: dict[str, list[RollupRow]] = defaultdict(list)
        for row in snap.rollups:
            self._by_metric[row.metric].append(row)

    def collect(self) -> Iterator[Metric]:
        """Every family, from the snapshot."""
        for name, doc, metric, labels in _COUNTERS:
            yield self._counter(name, doc, metric, labels)
        yield from self._money_and_tokens()
        yield _histogram(
            "keel_run_duration_seconds",
            "Working time of ended run segments (time paused excluded).",
            self._by_metric["run_latency"],
            self._by_metric["runs_finished"],
            with_tool=False,
        )
        yield _histogram(
            "keel_tool_duration_seconds",
            "Latency of tool call attempts that ran, by tool.",
            self._by_metric["tool_latency"],
            self._by_metric["tool_calls"],
            with_tool=True,
        )
        runs = GaugeMetricFamily("keel_runs", "Runs in the store by current status.", labels=["status"])
        for status, count in sorted(self._snap.runs_by_status.items()):
            runs.add_metric([status], count)
        yield runs
        pending = GaugeMetricFamily("keel_reviews_pending", "Review items waiting for a person.")
        pending.add_metric([], self._snap.reviews_pending)
        yield pending

    def _counter(self, name: str, doc: str, metric: str, labels: tuple[str, ...]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=["agent", *labels])
        for key, total in _summed(self._by_metric[metric], len(labels), lambda r: r.n).items():
            family.add_metric(list(key), total)
        return family

    def _money_and_tokens(self) -> Iterable[Metric]:
        calls = self._by_metric["model_calls"]
        tokens = CounterMetricFamily(
            "keel_tokens", "Tokens spent by model calls.", labels=["agent", "model", "phase", "direction"]
        )
        for key, total in _summed(calls, 2, lambda r: r.tokens_in).items():
            tokens.add_metric([*key, "input"], total)
        for key, total in _summed(calls, 2, lambda r: r.tokens_out).items():
            tokens.add_metric([*key, "output"], total)
        yield tokens
        cost = CounterMetricFamily(
            "keel_cost_usd", "Money spent on model calls, USD.", labels=["agent", "model", "phase"]
        )
        for key, total in _summed(calls, 2, lambda r: r.cost_usd).items():
            cost.add_metric(list(key), total)
        yield cost
        tool_cost = CounterMetricFamily(
            "keel_tool_cost_usd", "Money spent by paid tools, USD.", labels=["agent", "tool"]
        )
        for key, total in _summed(self._by_metric["tool_calls"], 1, lambda r: r.cost_usd).items():
            tool_cost.add_metric(list(key), total)
        yield tool_cost
        saved = CounterMetricFamily("keel_cache_saved_usd", "Money cache hits saved, USD.", labels=["agent"])
        for key, total in _summed(self._by_metric["cache_hits"], 0, lambda r: r.value).items():
            saved.add_metric(list(key), total)
        yield saved


def _summed(rows: list[RollupRow], labels: int, figure: Callable[[RollupRow], float]) -> dict[tuple[str, ...], float]:
    """Sum `figure` over `rows` by agent and the first `labels` labels."""
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for row in rows:
        sums[(row.agent, row.label1, row.label2)[: labels + 1]] += figure(row)
    return dict(sorted(sums.items()))


def _histogram(
    name: str, doc: str, buckets: list[RollupRow], totals: list[RollupRow], *, with_tool: bool
) -> HistogramMetricFamily:
    """A histogram family from per-bucket counts (label1 or label2 is the bucket's upper bound) and value sums."""
    labels = ["agent", "tool"] if with_tool else ["agent"]
    counts: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in buckets:
        key: tuple[str, ...] = (row.agent, row.label1) if with_tool else (row.agent,)
        counts[key][row.label2 if with_tool else row.label1] += row.n
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for row in totals:
        sums[(row.agent, row.label1) if with_tool else (row.agent,)] += row.value / 1000
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, per_bucket in sorted(counts.items()):
        cumulative, points = 0, []
        for bound in (*(f"{b:g}" for b in LATENCY_BUCKETS_S), "+Inf"):
            cumulative += per_bucket.get(bound, 0)
            points.append((bound, float(cumulative)))
        family.add_metric(list(key), points, sum_value=sums.get(key, 0.0))
    return family
