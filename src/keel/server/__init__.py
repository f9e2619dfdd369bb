"""Keel's dashboard (O4): a self-hosted web view of the runs in a store, its JSON API and Prometheus metrics.

``keel dashboard`` serves it (extra ``dashboard``). Pages are rendered on the server and updated live over
server-sent events; charts are inline SVG; the only script is a small vendored file of the package's own. It binds
127.0.0.1 by default, and needs a token (``KEEL_DASHBOARD_TOKEN``) to bind anywhere else.

- ``/``: runs per minute, cost per hour and day against the spending limits, latency, error, escalation and cache
  hit rates, loop breaks.
- ``/runs``, ``/runs/{id}``: the runs, filtered and paged; a run's decision trace, tool calls, token use by phase
  and status report.
- ``/reviews``: the review queue, to approve or deny; ``/agents``: agents and their spend.
- ``/api/…``: the same as JSON (``/api/openapi.json`` describes it); ``/metrics``: Prometheus.
"""

from __future__ import annotations

from keel.server.app import create_app, serve

__all__ = ["create_app", "serve"]
