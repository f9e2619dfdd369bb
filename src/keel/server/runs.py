"""The runs list and a run's page: the decision trace, its tool calls, token use by phase, the status report."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from keel.cli._render import event_details, event_summary
from keel.errors import QueryError, UnknownRunError
from keel.journal import Event, EventKind
from keel.observe.tools import preview, redacted_payload, tool_call_record
from keel.observe.window import parse_duration
from keel.result import RunStatus
from keel.store.base import ReviewItem, Store
from keel.usage import Usage

from .models import ReviewEntry, RunDetail, RunsPage, TraceEntry, UsageRow
from .overview import run_summary

__all__ = ["MAX_PAGE", "TRACE_PAGE", "RunFilters", "plain", "review_entry", "run_detail", "runs_page", "whole"]

MAX_PAGE = 200
"""Most runs one page of the list shows."""
TRACE_PAGE = 200
"""Events per page of a run's trace."""
JOURNAL_READ = 5_000
"""Events read for a run's tool calls and usage at most: a page stays fast whatever a journal's length."""
TOOL_CALLS_SHOWN = 500
"""Tool calls a run page lists at most (the first ones); `keel tools --json` lists them all."""


class RunFilters:
    """The runs list's filters, checked: a malformed one is a `QueryError` that says what is accepted."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.status: RunStatus | None = None
        if status := query.get("status"):
            try:
                self.status = RunStatus(status)
            except ValueError:
                accepted = ", ".join(s.value for s in RunStatus)
                raise QueryError(f"status must be one of {accepted}; got {status!r}") from None
        self.agent = plain(query.get("agent"), "agent") or None
        self.session_id = plain(query.get("session"), "session") or None
        self.since_text = query.get("since") or None
        self.since = None if self.since_text is None else time.time() - parse_duration(self.since_text)
        self.offset = whole(query.get("offset"), "offset")
        self.limit = whole(query.get("limit"), "limit", default=50, minimum=1, maximum=MAX_PAGE)

    def as_dict(self) -> dict[str, str]:
        """The filters set, as query parameters (paging links keep them)."""
        given = {"status": self.status, "agent": self.agent, "session": self.session_id, "since": self.since_text}
        return {key: str(value) for key, value in given.items() if value is not None}


def plain(text: str | None, name: str) -> str | None:
    """A text parameter as given; `QueryError` for a NUL character (no store can hold one: PostgreSQL refuses it)."""
    if text is not None and "\x00" in text:
        raise QueryError(f"{name} must not contain NUL characters")
    return text


def whole(text: str | None, name: str, *, default: int = 0, minimum: int = 0, maximum: int = 10**12) -> int:
    """A whole number from a query parameter (`default` when absent); `QueryError` saying what is accepted."""
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 13 or not minimum <= int(text) <= maximum:
        raise QueryError(f"{name} must be a whole number from {minimum} to {maximum}; got {text!r}")
    return int(text)


async def runs_page(store: Store, filters: RunFilters) -> RunsPage:
    """One page of runs matching `filters`, most recent first, with the number matching."""
    runs = await store.list_runs(
        limit=filters.limit,
        offset=filters.offset,
        agent=filters.agent,
        session_id=filters.session_id,
        status=filters.status,
        since=filters.since,
    )
    total = await store.count_runs(
        agent=filters.agent, session_id=filters.session_id, status=filters.status, since=filters.since
    )
    return RunsPage(
        runs=[run_summary(r) for r in runs],
        total=total,
        offset=filters.offset,
        limit=filters.limit,
        filters=filters.as_dict(),
    )


async def run_detail(store: Store, run_id: str, *, after: int = 0) -> RunDetail:
    """A run's page; `UnknownRunError` when there is no such run. The trace shows `TRACE_PAGE` events after `after`."""
    if "\x00" in run_id:  # no run id holds one, and PostgreSQL would refuse the query as a store failure
        raise UnknownRunError(f"no run {run_id!r} in the store at {store.url}")
    run = await store.get_run(run_id)
    journal = await store.events(run_id, limit=JOURNAL_READ)
    page = await store.events(run_id, after=after, limit=TRACE_PAGE + 1)
    reviews = await store.list_reviews(run_id=run_id)
    more = len(page) > TRACE_PAGE
    pending = any(item.status == "pending" for item in reviews)
    return RunDetail(
        run=run_summary(run),
        output=None if run.output is None else preview(run.output, 2000),
        report=_report(run.report),
        trace=[_trace_entry(e) for e in page[:TRACE_PAGE]],
        events_total=journal[-1].seq if len(journal) < JOURNAL_READ else None,
        next_after=page[TRACE_PAGE - 1].seq if more else None,
        tool_calls=[r for e in journal if (r := tool_call_record(e, run.agent)) is not None][:TOOL_CALLS_SHOWN],
        by_phase=_by_phase(journal),
        by_model=_by_model(journal),
        reviews=[review_entry(item) for item in reviews],
        resumable=run.status is RunStatus.ESCALATED and bool(reviews) and not pending,
    )


def _report(report: dict[str, Any] | None) -> dict[str, object] | None:
    if report is None:
        return None
    shown: dict[str, object] = {}
    for key, value in report.items():
        if isinstance(value, list | tuple):
            shown[key] = [preview(line, 300) for line in value[:50]]
        elif isinstance(value, str):
            shown[key] = preview(value, 500)
        else:
            shown[key] = value
    return shown


_SHOWN = ("why: ", "saw events ")  # detail lines the trace entry carries as fields (reason, informed_by)


def _trace_entry(event: Event) -> TraceEntry:
    # Redact the payload before it is worded and cut: a secret is never shown half.
    shown = dataclasses.replace(event, payload=redacted_payload(event.payload))
    p = shown.payload
    decision = event.kind is EventKind.MODEL_CALLED
    reason = p.get("reason") if decision else None
    return TraceEntry(
        seq=event.seq,
        kind=event.kind.value,
        phase=event.phase.value,
        ts=event.ts,
        summary=event_summary(shown, brief=True).plain,
        details=[line.plain for line in event_details(shown) if not line.plain.startswith(_SHOWN)][:20],
        tokens_in=event.tokens_in,
        tokens_out=event.tokens_out,
        cost_usd=event.cost_usd,
        latency_ms=event.latency_ms,
        reason=None if reason is None else preview(reason, 500),
        alternatives=[preview(a, 80) for a in (p.get("alternatives") or [])[:50]] if decision else [],
        informed_by=[int(seq) for seq in (p.get("informed_by") or [])[:50] if isinstance(seq, int)],
    )


def _by_phase(journal: list[Event]) -> list[UsageRow]:
    usage = Usage()
    for event in journal:
        usage.add_event(event)
    return [
        UsageRow(
            name=phase.value,
            calls=u.requests,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cost_usd=u.cost_usd,
        )
        for phase, u in usage.by_phase.items()
    ]


def _by_model(journal: list[Event]) -> list[UsageRow]:
    per_model: dict[str, Usage] = {}
    for event in journal:
        if event.kind is EventKind.MODEL_CALLED:
            per_model.setdefault(str(event.payload.get("model", "")), Usage()).add_event(event)
    return [
        UsageRow(
            name=m, calls=u.requests, input_tokens=u.input_tokens, output_tokens=u.output_tokens, cost_usd=u.cost_usd
        )
        for m, u in sorted(per_model.items())
    ]


def review_entry(item: ReviewItem) -> ReviewEntry:
    """A review item for the page and the API: the reason and arguments redacted and cut."""
    return ReviewEntry(
        id=item.id,
        run_id=item.run_id,
        agent=item.agent,
        reason=preview(item.reason, 500),
        action=item.action,
        arguments=preview(item.arguments, 500),
        priority=item.priority,
        created_at=item.created_at,
        status=item.status,
        decided_at=item.decided_at,
        decided_by=item.decided_by,
        note=preview(item.note, 300),
    )
