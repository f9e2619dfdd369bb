"""Observability over the journal (O1–O4): reports that read what runs recorded, for the CLI and the dashboard.

- `usage_report` sums tokens and money over runs (a session, an agent, a time window) by phase, model and agent.
- `tool_calls` / `tool_stats`: the tool-call log, redacted, with latency, cost, attempt and outcome (O2).
- `Observer` watches each run's journal as it is written (`Agent(observers=[...])`): telemetry export, such as
  `keel.observe.otel.OTelObserver` (OpenTelemetry spans, GenAI semantic conventions; extra ``otel``).
"""

from __future__ import annotations

from keel.observe.base import Observer, RunInfo
from keel.observe.tools import ToolCallRecord, ToolStats, tool_calls, tool_stats
from keel.observe.usage import UsageReport, usage_report

__all__ = [
    "Observer",
    "RunInfo",
    "ToolCallRecord",
    "ToolStats",
    "UsageReport",
    "tool_calls",
    "tool_stats",
    "usage_report",
]
