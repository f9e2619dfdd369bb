"""Observability over the journal (O1–O4): reports that read what runs recorded, for the CLI and the dashboard.

- `usage_report` sums tokens and money over runs (a session, an agent, a time window) by phase, model and agent.
"""

from __future__ import annotations

from keel.observe.usage import UsageReport, usage_report

__all__ = ["UsageReport", "usage_report"]
