"""Guard: screen what comes in (the task, untrusted tool output) and judge what goes out (the final answer).

Input screens (`InjectionScreen`) refuse a poisoned task — the run ends REJECTED — and quarantine a poisoned
tool output: the model still gets the data, wrapped and marked as data, never the instructions in it. Output
guards (PII, grounding, …) run in order on the final answer; each verdict with findings is journaled as a
`guard_verdict` (a pass is not: it would add an event to every run), a redaction is handed to the next guard,
and a block ends the run REJECTED with no output.
"""

from __future__ import annotations

from typing import Any, Literal

from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.guardrails.base import GuardContext, Verdict
from keel.guardrails.injection import quarantine
from keel.journal import EventKind, Phase
from keel.result import RunStatus
from keel.tools.tool import Tool

__all__ = ["judge_output", "screen_task", "screen_tool_output"]


async def _journal(state: RunState, verdict: Verdict, target: str, **extra: Any) -> None:
    payload: dict[str, Any] = {
        "guard": verdict.guard,
        "verdict": verdict.action,
        "target": target,
        "detail": verdict.detail,
        "findings": [{"kind": f.kind, "preview": f.preview, "start": f.start, "end": f.end} for f in verdict.findings],
        **extra,
    }
    if verdict.scores:
        payload["scores"] = verdict.scores
    await record(state, EventKind.GUARD_VERDICT, payload, phase=Phase.VALIDATION)


def _context(state: RunState, origin: Literal["tool_output", "output"]) -> GuardContext:
    return GuardContext(task=state.spec.task, sources=tuple(state.tool_results), origin=origin)


async def screen_task(state: RunState) -> Finish | None:
    """Screen the user's input; a screen that blocks it ends the run REJECTED before any model call."""
    for screen in state.spec.input_screens:
        verdict = screen.check(state.spec.task, GuardContext(task=state.spec.task, origin="input"))
        if verdict.passed:
            continue
        await _journal(state, verdict, "input")
        if verdict.action == "block":
            return Finish(
                RunStatus.REJECTED,
                f"the input was refused by {verdict.guard}: {verdict.detail}",
                output=None,
                not_done=("the task: its input looks like a prompt injection",),
            )
    return None


async def screen_tool_output(state: RunState, tool: Tool, call_id: str, content: str) -> str:
    """What the model is shown of a tool's output: as is (trusted tools, clean output), or quarantined."""
    if tool.trusted:
        return content
    for screen in state.spec.input_screens:
        verdict = screen.check(content, _context(state, "tool_output"))
        if verdict.passed:
            continue
        await _journal(state, verdict, "tool_output", tool=tool.name, call_id=call_id, quarantined=True)
        return quarantine(content, verdict.findings, source=tool.name)
    return content


async def judge_output(state: RunState, text: str) -> str | Finish:
    """Run the output guards on the final answer; the (possibly redacted) text, or the `Finish` of a block."""
    context = _context(state, "output")
    for guard in state.spec.output_guards:
        verdict = guard.check(text, context)
        if verdict.passed:  # only findings are journaled: a pass on every answer would double the journal
            continue
        await _journal(state, verdict, "output")
        if verdict.action == "redact" and verdict.text is not None:
            text = verdict.text
        elif verdict.action in ("block", "escalate"):
            # An escalating guard is refused at Agent construction until the review queue exists; a custom
            # guard that asks for escalation anyway is treated as a block: nothing unjudged gets out.
            return Finish(
                RunStatus.REJECTED,
                f"the answer was refused by {verdict.guard}: {verdict.detail}",
                output=None,
                not_done=("an answer that passes the output guards",),
            )
    return text
