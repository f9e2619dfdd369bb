"""Escalate: pause the run for a person (G4). Review items go to the queue, the pause to the journal.

Nothing an item is about has happened when the run pauses: a held turn's tool calls (all of them, so that a
call never runs on the assumption that a denied one did) are run at resume, a held answer is not delivered,
a held model call is not made. The `escalated` event carries everything resume needs (`pending`), so the
journal alone is the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel._pipeline.record import record
from keel._pipeline.state import UNSET, Finish, RunState
from keel._pipeline.validate import ValidCall
from keel.guardrails.escalation import Trigger, severity_rank
from keel.guardrails.review import ReviewQueue
from keel.journal import EventKind
from keel.models.base import ToolCall
from keel.result import RunStatus
from keel.store.base import ReviewItem

__all__ = [
    "HeldCall",
    "denial_feedback",
    "hold_answer",
    "hold_failed_calls",
    "hold_loop",
    "hold_spend_past",
    "hold_tool_calls",
    "loop_feedback",
]

ANSWER_PRIORITY = 1
SPEND_PRIORITY = 2
LOOP_PRIORITY = 2


@dataclass(frozen=True, slots=True)
class HeldCall:
    """A tool call of the held turn that needs a person's decision, and why."""

    call: ToolCall
    arguments: dict[str, Any]
    severity: str
    reason: str
    trigger: Trigger


async def _queue(state: RunState, asks: list[tuple[str, str, dict[str, Any], int]]) -> list[ReviewItem]:
    """One pending review item per ask: (reason, action, arguments, priority)."""
    queue = ReviewQueue(state.spec.store)
    return [
        await queue.add(
            run_id=state.spec.run_id,
            agent=state.spec.agent,
            reason=reason,
            action=action,
            arguments=arguments,
            priority=priority,
        )
        for reason, action, arguments, priority in asks
    ]


async def _stop(
    state: RunState, trigger: Trigger, pending: dict[str, Any], items: list[ReviewItem], output: Any = UNSET
) -> Finish:
    """Journal the pause (`escalated`, with what resume needs) and end this part of the run ESCALATED."""
    reason = items[0].reason if len(items) == 1 else f"{len(items)} actions need approval; first: {items[0].reason}"
    await record(
        state,
        EventKind.ESCALATED,
        {
            "reason": reason,
            "trigger": trigger,
            "review_ids": [item.id for item in items],
            "pending": pending,
            "elapsed_s": round(time.monotonic() - state.started, 3),
        },
    )
    ids = ", ".join(item.id for item in items)
    waiting = tuple(f"{item.action}: waiting for a person ({item.id})" for item in items)
    return Finish(RunStatus.ESCALATED, f"waiting for a person ({ids}): {reason}", output=output, not_done=waiting)


def _held_calls(
    calls: Sequence[ToolCall], reviewed: Sequence[ToolCall], items: list[ReviewItem], **extra: Any
) -> dict[str, Any]:
    """The `pending` step of a pause on tool calls: the calls resume runs, and which review item decides which."""
    return {
        "kind": "tool_calls",
        "calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
        "reviews": {call.id: item.id for call, item in zip(reviewed, items, strict=True)},
        **extra,
    }


async def hold_tool_calls(
    state: RunState, turn: tuple[ToolCall, ...], held: list[HeldCall], confidence: float | None
) -> Finish:
    """Pause before a turn's tool calls run, with one review item per call that needs approval."""
    items = await _queue(state, [(h.reason, h.call.name, h.arguments, severity_rank(h.severity)) for h in held])
    pending = _held_calls(turn, [h.call for h in held], items, confidence=confidence)
    return await _stop(state, held[0].trigger, pending, items)


async def hold_failed_calls(
    state: RunState, failed: list[tuple[ValidCall, str]], trigger: Trigger = "failure", also: Sequence[ToolCall] = ()
) -> Finish:
    """Pause after required tools failed every attempt and alternative (or may have run before a crash).

    Approving a call runs it again (its whole failure chain, same idempotency key); denying it tells the model
    it was not done. The calls' failed attempts stay in the journal; resume answers each call once. The calls in
    `also` need no decision: they run at resume with the approved ones.
    """
    asks = [
        (reason, v.call.name, v.args.model_dump(mode="json"), severity_rank(v.tool.severity)) for v, reason in failed
    ]
    items = await _queue(state, asks)
    reviewed = [v.call for v, _ in failed]
    return await _stop(state, trigger, _held_calls((*also, *reviewed), reviewed, items, retry=True), items)


async def hold_answer(
    state: RunState, answer: str, *, reason: str, trigger: Trigger, guards_done: int, shown: Any
) -> Finish:
    """Pause with the final answer held back until a person releases it.

    Args:
        state: the run.
        answer: the answer as judged so far (JSON for a typed answer).
        reason: why a person must see it, in one line.
        trigger: what held it (``"guard"`` or ``"confidence"``).
        guards_done: how many output guards it has passed; on approval the rest still run.
        shown: what the reviewer sees as the item's arguments (the answer, or the typed answer's fields).
    """
    items = await _queue(state, [(reason, "answer", {"answer": shown}, ANSWER_PRIORITY)])
    pending = {"kind": "answer", "answer": answer, "guards_done": guards_done}
    return await _stop(state, trigger, pending, items, output=None)  # not released: the caller does not get it


async def hold_spend_past(state: RunState, spent_usd: float, next_usd: float, threshold_usd: float) -> Finish:
    """Pause before a model call that would take the run's spend past the review threshold."""
    reason = (
        f"the next model call (up to ${next_usd:.4f}) would take the run's spend from ${spent_usd:.4f} past "
        f"${threshold_usd:.4f}; approve to let it spend up to another ${state.spec.escalation.max_cost_usd}"
    )
    arguments = {"spent_usd": round(spent_usd, 8), "next_call_usd": round(next_usd, 8), "threshold_usd": threshold_usd}
    items = await _queue(state, [(reason, "continue", arguments, SPEND_PRIORITY)])
    return await _stop(state, "cost", {"kind": "spend"}, items)


async def hold_loop(state: RunState, detail: str, state_hash: str) -> Finish:
    """Pause a run caught in a loop: a person lets it go on (the model is told so) or stops it (PARTIAL)."""
    reason = f"the run is looping: {detail}; approve to let it go on, deny to stop it with what it has"
    items = await _queue(state, [(reason, "continue", {"loop": detail, "state_hash": state_hash}, LOOP_PRIORITY)])
    return await _stop(state, "loop", {"kind": "loop"}, items)


def loop_feedback(item: ReviewItem) -> str:
    """What the model is told when a person lets a looping run go on."""
    note = f" Their note: {item.note}" if item.note else ""
    return (
        f"A reviewer ({item.decided_by}) let you continue after you repeated yourself.{note} Do not repeat the "
        "same calls: try something different or give your final answer."
    )


def denial_feedback(item: ReviewItem) -> str:
    """What the model is told about a denied action; the same text live and when rebuilt from the journal."""
    note = f" Their note: {item.note}" if item.note else ""
    if item.action == "answer":
        return f"A reviewer ({item.decided_by}) did not approve your answer.{note} Write a different final answer."
    return (
        f"A reviewer ({item.decided_by}) denied this call of {item.action}; it was not run.{note} "
        "Do not try it again: continue without it, or tell the user it was not done."
    )
