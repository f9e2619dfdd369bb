"""Guard: screen what comes in (the task, untrusted tool output) and judge what goes out (the final answer).

Input screens (`InjectionScreen`) refuse a poisoned task — the run ends REJECTED — and quarantine a poisoned
tool output: the model still gets the data, wrapped and marked as data, never the instructions in it. Output
guards (PII, grounding, …) run in order on the final answer; each verdict with findings is journaled as a
`guard_verdict` (a pass is not: it would add an event to every run), a redaction is handed to the next guard,
a block ends the run REJECTED with no output, and an escalation holds the answer for a person.

A guard that raises, or returns something that is not a `Verdict`, fails closed: its verdict is a block (the task
refused, the tool output quarantined, the answer withheld), journaled with what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from keel._pipeline.clean import clean_text
from keel._pipeline.failure import describe
from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.guardrails.base import Guard, GuardContext, Verdict
from keel.guardrails.injection import quarantine
from keel.journal import EventKind, Phase
from keel.result import RunStatus
from keel.tools.tool import Tool

__all__ = ["HeldForReview", "judge_output", "judged", "output_context", "screen_task", "screen_tool_output"]


@dataclass(frozen=True, slots=True)
class HeldForReview:
    """A guard wants a person to see the answer before it goes out (mode escalate, or a block escalated)."""

    text: str
    """The answer as judged up to that guard (earlier guards' redactions applied)."""
    guards_done: int
    """Guards judged so far, the holding one included: on approval, the guards after it still run."""
    reason: str


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


def judged(guard: Guard, text: str, context: GuardContext) -> Verdict:
    """`guard`'s verdict on `text`; a block saying why when the guard itself fails."""
    try:
        verdict = guard.check(text, context)
    except Exception as exc:  # someone's guard code: a bug in it must not let unchecked text through
        problem = f"it raised {describe(exc)}"
    else:
        if isinstance(verdict, Verdict):
            return verdict
        problem = f"it returned a {type(verdict).__name__}, not a Verdict"
    name = getattr(guard, "name", type(guard).__name__)
    return Verdict(guard=str(name), action="block", detail=clean_text(f"the guard failed ({problem}); failing closed"))


def _context(state: RunState, origin: Literal["tool_output", "output"]) -> GuardContext:
    trusted = (state.spec.instructions, *state.trusted_results)
    return GuardContext(task=state.spec.task, sources=tuple(state.tool_results), trusted_sources=trusted, origin=origin)


def output_context(state: RunState) -> GuardContext:
    """What an output guard judges an answer against: the task, every tool result, the trusted sources."""
    return _context(state, "output")


async def screen_task(state: RunState) -> Finish | None:
    """Screen the user's input; a screen that blocks it ends the run REJECTED before any model call."""
    for screen in state.spec.input_screens:
        verdict = judged(screen, state.spec.task, GuardContext(task=state.spec.task, origin="input"))
        if verdict.passed:
            continue
        await _journal(state, verdict, "input")
        if state.tainted_by is None:
            state.tainted_by = f"the task, flagged by {verdict.guard}"
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
        verdict = judged(screen, content, _context(state, "tool_output"))
        if verdict.passed:
            continue
        await _journal(state, verdict, "tool_output", tool=tool.name, call_id=call_id, quarantined=True)
        return quarantine(content, verdict.findings, source=tool.name)
    return content


async def judge_output(state: RunState, text: str, *, first: int = 0) -> str | Finish | HeldForReview:
    """Run the output guards (from the `first`) on the final answer.

    Returns the (possibly redacted) text; the `Finish` of a block; or, for a guard in escalate mode (or a block
    under ``Escalation(on_guard_failure="escalate")``), the answer held for a person.
    """
    context = _context(state, "output")
    escalate_blocks = state.spec.escalation.on_guard_failure == "escalate"
    for index, guard in enumerate(state.spec.output_guards[first:], start=first):
        verdict = judged(guard, text, context)
        if verdict.passed:  # only findings are journaled: a pass on every answer would double the journal
            continue
        await _journal(state, verdict, "output")
        if verdict.action == "redact" and verdict.text is not None:
            text = verdict.text
        elif verdict.action == "escalate" or (verdict.action == "block" and escalate_blocks):
            return HeldForReview(
                text, index + 1, f"{verdict.guard} wants a person to check the answer: {verdict.detail}"
            )
        elif verdict.action == "block":
            return Finish(
                RunStatus.REJECTED,
                f"the answer was refused by {verdict.guard}: {verdict.detail}",
                output=None,
                not_done=("an answer that passes the output guards",),
            )
    return text
