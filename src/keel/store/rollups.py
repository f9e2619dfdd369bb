"""Rollups: per-minute counters a store keeps as events are appended, so dashboards and metrics stay fast.

The journal is the source of truth; a rollup is a running sum over it, written in the same transaction as the
event it counts, so the two never disagree. `increments` says, for one event, which counters move: every backend
applies the same increments (SQLite as upserts into its ``rollups`` table, the in-memory store in a dict), and a
store migrated from an older version computes its rollups from the journal it already has.

A counter is keyed by (span, metric, bucket, agent, label1, label2) and sums `n`, tokens, money and a `value`
whose meaning depends on the metric (the table below). Every increment is kept at three resolutions (`SPANS`):
per minute, per hour and per day, so that a query reads few rows whatever its window — minutes for the last
hour's chart, hours for a week, days for all time — at the price of three small upserts per counted event.
`resolution` picks the span a query reads.

| metric | label1 | label2 | n | value |
|---|---|---|---|---|
| ``runs_started`` | | | new runs (not resumptions) | |
| ``runs_finished`` | status | | run segments ended | working time, ms (pauses excluded) |
| ``run_latency`` | bucket upper bound, s | | runs ended within it | |
| ``model_calls`` | model | phase | calls (failed ones too; not those a cache answered) | latency, ms |
| ``model_errors`` | model | retryable or final | failed calls | |
| ``tool_calls`` | tool | outcome | attempts | latency, ms |
| ``tool_latency`` | tool | bucket upper bound, s | attempts that ran, within it | |
| ``tool_rejections`` | tool | | refused proposals | |
| ``escalations`` | trigger | | pauses for a person | |
| ``loops`` | action (nudge, break, escalate) | kind | loops detected | |
| ``cache_hits`` | | | hits | saved USD (tokens saved in tokens_in) |
| ``budget_refusals`` | limit | | refused calls | |
| ``retries`` | tool or model | | retries scheduled | |
| ``fallbacks`` | replaced tool or model | | switches or degradations | |
| ``guard_verdicts`` | guard | verdict | verdicts | |

Money and tokens (`cost_usd`, `tokens_in`, `tokens_out`) are counted on ``model_calls`` and ``tool_calls``
only, so summing those two metrics gives a run's, an agent's or the store's spend.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from keel.journal import Event, EventKind

__all__ = ["COUNTED_KINDS", "LATENCY_BUCKETS_S", "Increment", "RollupRow", "bucket_label", "increments"]

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
)  # fmt: skip
"""Upper bounds of the latency histograms, in seconds (Prometheus ``le``); above the last is ``+Inf``."""


@dataclass(frozen=True, slots=True)
class Increment:
    """What one event adds to one counter."""

    metric: str
    label1: str = ""
    label2: str = ""
    n: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One counter over one time bucket (or over all time), as a store returns it."""

    bucket: int
    """The bucket's start, Unix time (0 for totals)."""
    agent: str
    metric: str
    label1: str
    label2: str
    n: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    value: float


SPANS: tuple[int, ...] = (60, 3600, 86400)
"""The resolutions counters are kept at, in seconds: a minute, an hour, a day."""

METRICS: tuple[str, ...] = (
    "runs_started", "runs_finished", "run_latency", "model_calls", "model_errors", "tool_calls", "tool_latency",
    "tool_rejections", "escalations", "loops", "cache_hits", "budget_refusals", "retries", "fallbacks",
    "guard_verdicts",
)  # fmt: skip
"""Every metric `increments` produces."""


def resolution(since: float | None, bucket_s: int, now: float) -> int:
    """The span a query reads: the coarsest that still answers it exactly enough.

    Buckets of `bucket_s` seconds read the coarsest span dividing `bucket_s`. Totals (``bucket_s=0``) read minutes
    for a window of up to two days (exact to the minute), hours up to 90 days, days beyond and for all time; the
    window then starts at the beginning of the span `since` falls in.
    """
    if bucket_s > 0:
        return max(span for span in SPANS if bucket_s % span == 0)
    if since is None or now - since > 90 * 86400:
        return 86400
    return 60 if now - since <= 2 * 86400 else 3600


COUNTED_KINDS = frozenset(EventKind) - {
    EventKind.CHECKPOINT,
    EventKind.BUDGET_RESERVED,
    EventKind.PLAN_VERSION,
    EventKind.REVIEW_DECIDED,
}
"""The kinds of event that move a counter (`increments` returns nothing for the others)."""


def bucket_label(seconds: float) -> str:
    """The histogram bucket `seconds` falls in, as its upper bound (``"0.25"``, ``"+Inf"``)."""
    index = bisect.bisect_left(LATENCY_BUCKETS_S, seconds)
    return "+Inf" if index == len(LATENCY_BUCKETS_S) else f"{LATENCY_BUCKETS_S[index]:g}"


def quantile(counts: dict[str, int], q: float) -> float | None:
    """The `q` quantile (0..1) of a latency histogram given as counts per `bucket_label`, in seconds.

    Interpolated linearly within the bucket it falls in, as Prometheus's ``histogram_quantile`` does; a quantile in
    the ``+Inf`` bucket is reported as the last finite bound. None for an empty histogram.
    """
    total = sum(counts.values())
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound in LATENCY_BUCKETS_S:
        in_bucket = counts.get(f"{bound:g}", 0)
        if in_bucket and seen + in_bucket >= rank:
            return lower + (bound - lower) * (rank - seen) / in_bucket
        seen, lower = seen + in_bucket, bound
    return LATENCY_BUCKETS_S[-1]


def increments(event: Event) -> list[Increment]:
    """The counters `event` moves (most events move one or none)."""
    payload = event.payload
    match event.kind:
        case EventKind.RUN_STARTED:
            return [] if payload.get("resumed") else [Increment("runs_started")]
        case EventKind.RUN_FINISHED:
            status = str(payload.get("status", ""))
            return [
                Increment("runs_finished", status, value=event.latency_ms),
                Increment("run_latency", bucket_label(event.latency_ms / 1000)),
            ]
        case EventKind.MODEL_CALLED:
            return _model_call(event)
        case EventKind.TOOL_CALLED:
            return _tool_call(event)
        case EventKind.TOOL_REJECTED:
            return [Increment("tool_rejections", str(payload.get("tool", "")))]
        case EventKind.ESCALATED:
            return [Increment("escalations", str(payload.get("trigger", "")))]
        case EventKind.LOOP_DETECTED:
            return [Increment("loops", str(payload.get("action", "")), str(payload.get("kind", "")))]
        case EventKind.CACHE_HIT:
            saved_usd = float(payload.get("saved_cost_usd") or 0.0)
            return [Increment("cache_hits", tokens_in=int(payload.get("saved_tokens") or 0), value=saved_usd)]
        case EventKind.BUDGET_REFUSED:
            return [Increment("budget_refusals", str(payload.get("limit", "")))]
        case EventKind.RETRY_SCHEDULED:
            return [Increment("retries", str(payload.get("tool") or payload.get("model") or ""))]
        case EventKind.FALLBACK_USED:
            return [Increment("fallbacks", str(payload.get("from", "")))]
        case EventKind.GUARD_VERDICT:
            return [Increment("guard_verdicts", str(payload.get("guard", "")), str(payload.get("verdict", "")))]
        case _:
            return []


def _model_call(event: Event) -> list[Increment]:
    if event.payload.get("cached"):  # answered from a cache: counted as a cache hit, not as a call
        return []
    model = str(event.payload.get("model", ""))
    counted = [
        Increment(
            "model_calls",
            model,
            event.phase.value,
            tokens_in=event.tokens_in,
            tokens_out=event.tokens_out,
            cost_usd=event.cost_usd,
            value=event.latency_ms,
        )
    ]
    if event.payload.get("error"):
        retryable = "retryable" if event.payload.get("retryable") else "final"
        counted.append(Increment("model_errors", model, retryable))
    return counted


def _tool_call(event: Event) -> list[Increment]:
    tool = str(event.payload.get("tool", ""))
    outcome = str(event.payload.get("outcome", ""))
    counted = [Increment("tool_calls", tool, outcome, cost_usd=event.cost_usd, value=event.latency_ms)]
    if int(event.payload.get("attempt") or 0) > 0:  # attempt 0: not run (unavailable), no latency to count
        counted.append(Increment("tool_latency", tool, bucket_label(event.latency_ms / 1000)))
    return counted
