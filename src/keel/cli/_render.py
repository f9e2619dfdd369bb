"""Rendering helpers shared by the CLI commands: statuses, money, tokens, and one-line views of journal events.

Everything a model, a tool or a user wrote is rendered as plain `Text` (never parsed as rich markup), so brackets
in a tool result cannot restyle or hide the output.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from rich.text import Text

from keel.journal import Event, EventKind
from keel.observe.tools import redacted_payload
from keel.result import RunStatus

__all__ = [
    "STATUS_STYLES",
    "as_shown",
    "call_text",
    "event_details",
    "event_summary",
    "metrics",
    "money",
    "short",
    "status_text",
    "timestamp",
]

STATUS_STYLES: dict[str, str] = {
    RunStatus.COMPLETED: "bold green",
    RunStatus.PARTIAL: "bold yellow",
    RunStatus.ESCALATED: "bold magenta",
    RunStatus.REJECTED: "bold red",
    RunStatus.FAILED: "bold red",
    RunStatus.RUNNING: "cyan",
}
"""How each run status is colored."""

_OUTCOME_STYLES = {"ok": "green", "error": "red", "timeout": "red"}


def as_shown(event: Event) -> Event:
    """`event` as people may see it: every string of its payload redacted (personal data, secrets), then cut.

    Traces and progress lines are for eyes and terminals; the journal keeps what resume needs.
    """
    return dataclasses.replace(event, payload=redacted_payload(event.payload))


def status_text(status: str) -> Text:
    """A run status, colored."""
    return Text(str(status), style=STATUS_STYLES.get(str(status), ""))


def money(usd: float) -> str:
    """Dollars with enough decimals to show the cost of a single cheap model call."""
    return f"${usd:,.6f}" if usd < 1 else f"${usd:,.4f}"


def timestamp(ts: float | None) -> str:
    """Local date and time of a Unix timestamp, or an empty string."""
    return "" if not ts else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def short(value: Any, limit: int = 160) -> str:
    """`value` on one line (JSON for structures), cut to `limit` characters."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_text(name: str, arguments: Any, limit: int = 100) -> str:
    """A tool call as ``name(key='value', …)``; arguments may be a dict or the raw JSON text a model sent."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return f"{name}({short(arguments, limit)})"  # not JSON: show what the model sent
    if isinstance(arguments, dict):
        inner = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    else:
        inner = short(arguments, limit)
    return f"{name}({short(inner, limit)})"


def metrics(event: Event) -> Text:
    """Tokens, cost and latency of an event, dimmed; empty when it has none."""
    parts: list[str] = []
    if event.tokens_in or event.tokens_out:
        parts.append(f"{event.tokens_in:,} in / {event.tokens_out:,} out tok")
    if event.cost_usd:
        parts.append(money(event.cost_usd))
    if event.latency_ms:
        parts.append(f"{event.latency_ms:,.1f} ms" if event.latency_ms >= 0.05 else "<0.1 ms")
    return Text(" · ".join(parts), style="dim")


def _model_called(p: Mapping[str, Any]) -> Text:
    step = f"step {p.get('step', '?')} "
    if p.get("error"):
        return Text.assemble(step, ("✗ ", "red"), (str(p["error"]), "red"))
    calls = p.get("tool_calls") or []
    if calls:
        wanted = ", ".join(call_text(c.get("name", "?"), c.get("arguments", "")) for c in calls)
        return Text.assemble(step, ("→ ", "cyan"), wanted)
    return Text.assemble(step, ("answer: ", "cyan"), short(p.get("text") or "", 120))


def _tool_called(p: Mapping[str, Any]) -> Text:
    outcome = str(p.get("outcome", "?"))
    style = _OUTCOME_STYLES.get(outcome, "")
    text = Text.assemble(call_text(p.get("tool", "?"), p.get("arguments", {})), " → ", (outcome, style))
    if outcome == "ok":
        text.append(f"  {short(p.get('result'), 100)}", style="dim")
    else:
        text.append(f"  {short(p.get('error'), 140)}", style=style)
    return text


def _tool_rejected(p: Mapping[str, Any]) -> Text:
    return Text.assemble(
        call_text(p.get("tool", "?"), p.get("arguments", {})), " → ", ("rejected", "red"), f"  {short(p.get('reason'))}"
    )


def _run_finished(p: Mapping[str, Any]) -> Text:
    return Text.assemble(status_text(str(p.get("status", "?"))), f" — {short(p.get('reason') or '', 140)}")


def _run_started(p: Mapping[str, Any]) -> Text:
    if p.get("resumed"):
        if p.get("review_ids"):
            return Text(f"resumed from {p.get('from')} after review {', '.join(p['review_ids'])}")
        return Text(f"resumed after its process died (journal intact up to event #{p.get('interrupted_after', '?')})")
    tools = ", ".join(p.get("tools") or []) or "none"
    return Text(f"{p.get('agent')} on {p.get('model')} · tools: {tools} · task: {short(p.get('task') or '', 100)}")


def _guard_verdict(p: Mapping[str, Any]) -> Text:
    verdict = str(p.get("verdict", "?"))
    text = Text.assemble(f"{p.get('guard')}: ", (verdict, "green" if verdict == "pass" else "yellow"))
    if p.get("detail"):
        text.append(f"  {short(p['detail'], 140)}")
    return text


_SUMMARIES: dict[str, Callable[[Mapping[str, Any]], Text]] = {
    EventKind.RUN_STARTED: _run_started,
    EventKind.MODEL_CALLED: _model_called,
    EventKind.TOOL_CALLED: _tool_called,
    EventKind.TOOL_REJECTED: _tool_rejected,
    EventKind.GUARD_VERDICT: _guard_verdict,
    EventKind.RUN_FINISHED: _run_finished,
    EventKind.CACHE_HIT: lambda p: Text(
        f"{call_text(p['tool'], p.get('arguments', {})) if p.get('tool') else 'model response'} from the cache: "
        f"saved {p.get('saved_tokens', 0):,} tokens · {money(float(p.get('saved_cost_usd') or 0))}",
        style="green",
    ),
    EventKind.BUDGET_RESERVED: lambda p: Text(
        f"reserved {p.get('tokens', 0):,} tokens · {money(float(p.get('usd') or 0))} against "
        f"{', '.join(p.get('keys') or []) or 'the limits'}",
        style="dim",
    ),
    EventKind.BUDGET_REFUSED: lambda p: _budget_refused(p),
    EventKind.ESCALATED: lambda p: Text(
        f"{p.get('trigger', '?')}: {short(p.get('reason') or '')} (review {', '.join(p.get('review_ids') or [])})",
        style="magenta",
    ),
    EventKind.REVIEW_DECIDED: lambda p: Text(f"{p.get('decision')} by {p.get('by')}: {short(p.get('note') or '')}"),
    EventKind.RETRY_SCHEDULED: lambda p: Text(
        f"attempt {p.get('attempt')} in {p.get('delay_s')}s after {short(p.get('error') or '')}"
    ),
    EventKind.FALLBACK_USED: lambda p: _fallback_used(p),
    EventKind.LOOP_DETECTED: lambda p: _loop_detected(p),
    EventKind.CHECKPOINT: lambda p: _checkpoint(p),
}


def _budget_refused(p: Mapping[str, Any]) -> Text:
    if "key" in p:  # a spending limit: what its window holds
        held = float(p.get("spent") or 0) + float(p.get("reserved") or 0)
        return Text(
            f"{p.get('limit')} of {p.get('key')}: the call needs {p.get('needed')}, {held:g} of {p.get('ceiling')} "
            "is already spent or held — refused before it was made",
            style="yellow",
        )
    return Text(
        f"{p.get('limit')}: the call needs {p.get('needed')}, {p.get('remaining')} left — refused", style="yellow"
    )


def _fallback_used(p: Mapping[str, Any]) -> Text:
    if p.get("degraded"):
        gone = ", ".join(p.get("unavailable") or [str(p.get("from"))])
        return Text(f"gave up on {gone} for this run: {short(p.get('reason') or '')}", style="yellow")
    skipped = " (skipped: cannot take the arguments)" if p.get("skipped") else ""
    if p.get("tier"):
        return Text(f"up to the {p['tier']} tier ({p.get('to')}): {short(p.get('reason') or '')}", style="yellow")
    kind = "model " if p.get("model") else ""
    return Text(f"{kind}{p.get('from')} → {p.get('to')}{skipped}: {short(p.get('reason') or '')}")


def _loop_detected(p: Mapping[str, Any]) -> Text:
    what = "no new information" if p.get("kind") == "no_progress" else f"state {p.get('state_hash')} revisited"
    action = {"nudge": "the model was told", "break": "loop broken", "escalate": "sent to a person"}
    return Text(f"{what} at step {p.get('step')}: {action.get(str(p.get('action')), p.get('action'))}", style="yellow")


def _checkpoint(p: Mapping[str, Any]) -> Text:
    stage = p.get("stage")
    if stage == "tool_started":
        return Text(f"{p.get('tool')} started (attempt {p.get('attempt')})", style="dim")
    if stage == "stopping":
        return Text(f"stopping: {short(p.get('reason') or '')}", style="yellow")
    return Text(f"step {p.get('step')} done · state {p.get('state_hash')}", style="dim")


def _brief(event: Event) -> Text | None:
    """A shorter summary for a trace, whose detail lines already show results, answers and tasks."""
    p = event.payload
    if event.kind is EventKind.TOOL_CALLED:
        outcome = str(p.get("outcome", "?"))
        return Text.assemble(
            call_text(p.get("tool", "?"), p.get("arguments", {})), " → ", (outcome, _OUTCOME_STYLES.get(outcome, ""))
        )
    if event.kind is EventKind.MODEL_CALLED and p.get("text") and not p.get("tool_calls") and not p.get("error"):
        return Text.assemble(f"step {p.get('step', '?')} ", ("answer", "cyan"), f" ({len(p['text']):,} characters)")
    if event.kind is EventKind.RUN_STARTED and not p.get("resumed"):
        return Text(f"{p.get('agent')} on {p.get('model')} · tools: {', '.join(p.get('tools') or []) or 'none'}")
    return None


def event_summary(event: Event, *, brief: bool = False) -> Text:
    """The essentials of an event on one line (what a progress display or a trace line shows).

    Args:
        event: the journal event.
        brief: leave out what `event_details` shows anyway (tool results, the answer's text, the task).
    """
    if brief and (text := _brief(event)) is not None:
        return text
    render = _SUMMARIES.get(event.kind)
    return render(event.payload) if render is not None else Text(short(event.payload))


def _model_details(p: Mapping[str, Any]) -> list[Text]:
    lines: list[Text] = []
    if p.get("reason"):
        lines.append(Text.assemble(("why: ", "bold"), str(p["reason"])))
    if p.get("text") and p.get("tool_calls"):
        lines.append(Text.assemble(("said: ", "bold"), short(p["text"], 400)))
    elif p.get("text"):
        lines.append(Text.assemble(("answer: ", "bold"), short(p["text"], 1000)))
    if p.get("confidence") is not None:
        lines.append(Text.assemble(("confidence: ", "bold"), str(p["confidence"])))
    if p.get("tier_reason"):
        lines.append(Text.assemble(("tier: ", "bold"), str(p["tier_reason"])))
    if p.get("cached"):
        lines.append(Text("answered from the cache: nothing spent", style="green"))
    for note in p.get("provider_notes") or ():
        lines.append(Text.assemble(("keel: ", "bold yellow"), str(note)))
    if p.get("informed_by"):
        lines.append(Text("saw events " + ", ".join(f"#{seq}" for seq in p["informed_by"]), style="dim"))
    return lines


def _tool_details(p: Mapping[str, Any]) -> list[Text]:
    lines = [Text.assemble(("arguments: ", "bold"), short(p.get("arguments"), 400))]
    if p.get("outcome") == "ok":
        lines.append(Text.assemble(("result: ", "bold"), short(p.get("result"), 600)))
    else:
        lines.append(Text.assemble(("error: ", "bold red"), short(p.get("error"), 600)))
    facts = f"attempt {p.get('attempt', 1)} · severity {p.get('severity', '?')}"
    if p.get("side_effects"):
        facts += f" · side effects · idempotency key {p.get('idempotency_key')}"
    lines.append(Text(facts, style="dim"))
    return lines


def _finished_details(p: Mapping[str, Any]) -> list[Text]:
    report = p.get("report") or {}
    lines = [Text(f"done: {line}", style="green") for line in report.get("done", ())]
    lines += [Text(f"not done: {line}", style="yellow") for line in report.get("not_done", ())]
    if p.get("output") is not None:
        lines.append(Text.assemble(("output: ", "bold"), short(p["output"], 600)))
    if report.get("resume"):
        lines.append(Text(f"resume: {report['resume']}", style="cyan"))
    return lines


_DETAILS: dict[str, Callable[[Mapping[str, Any]], list[Text]]] = {
    EventKind.MODEL_CALLED: _model_details,
    EventKind.TOOL_CALLED: _tool_details,
    EventKind.TOOL_REJECTED: lambda p: [Text.assemble(("reason: ", "bold red"), str(p.get("reason", "")))],
    EventKind.RUN_FINISHED: _finished_details,
}


def event_details(event: Event) -> list[Text]:
    """Further lines a trace shows under an event: the model's reason, full results, errors, the report."""
    render = _DETAILS.get(event.kind)
    return render(event.payload) if render is not None else []
