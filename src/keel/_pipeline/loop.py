"""Checkpoint each step and check it for loops (E4): the state hash is journaled, the detector reads it.

A step's state is its tool calls in canonical form (name, arguments with sorted keys) with a digest of what the
model was told of each; the hash of that is journaled as a `checkpoint` with the result digests, so a resumed
run rebuilds the detector's memory from the journal alone. A loop gets one nudge (journaled as `loop_detected`
with the message as ``feedback``), then is broken: PARTIAL, or a pause for a person.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from keel._pipeline.escalate import hold_loop
from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.journal import EventKind
from keel.models.base import ToolCall, ToolResultMessage, UserMessage
from keel.recovery.loop import LoopFinding
from keel.result import RunStatus

__all__ = ["check_step", "nudge_message", "step_state"]


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):  # nested past the parser's depth: invalid, rejected by `validate`
        return arguments  # broken JSON is compared as sent


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def step_state(pairs: Sequence[tuple[ToolCall, ToolResultMessage]]) -> tuple[str, list[str]]:
    """The step's state hash and the digests of its results (errors included: the same error is no news)."""
    digests = [_digest(f"{reply.is_error}\x00{reply.content}") for _, reply in pairs]
    parts = sorted(
        f"{call.name}\x00{_canonical(call.arguments)}\x00{digest}"
        for (call, _), digest in zip(pairs, digests, strict=True)
    )
    return _digest("\x01".join(parts)), digests


def nudge_message(finding: LoopFinding, calls: Sequence[ToolCall]) -> str:
    """What the model is told the first time it loops; the same text live and when replayed."""
    names = ", ".join(sorted({call.name for call in calls})) or "the same tools"
    return (
        f"You are repeating yourself: {finding.detail} ({names}). Repeating it will not give you anything new. "
        "Use what you already have, try something different, or give your final answer now."
    )


async def check_step(state: RunState, pairs: Sequence[tuple[ToolCall, ToolResultMessage]]) -> Finish | None:
    """Journal the step's checkpoint, then nudge, break or escalate a loop it closes."""
    if not pairs:
        return None
    state_hash, digests = step_state(pairs)
    await record(state, EventKind.CHECKPOINT, {"step": state.steps, "state_hash": state_hash, "results": digests})
    detector = state.spec.loop_detector
    finding = detector.observe(state.loop, state_hash, digests)
    if finding is None:
        return None
    payload = {"state_hash": state_hash, "step": state.steps, "kind": finding.kind, "period": finding.period}
    if detector.nudge and not state.loop.nudged:
        state.loop.nudged = True
        message = nudge_message(finding, [call for call, _ in pairs])
        await record(state, EventKind.LOOP_DETECTED, {**payload, "action": "nudge", "feedback": message})
        state.messages.append(UserMessage(message))
        return None
    action = "escalate" if detector.on_loop == "escalate" else "break"
    await record(state, EventKind.LOOP_DETECTED, {**payload, "action": action, "detail": finding.detail})
    if action == "escalate":
        return await hold_loop(state, finding.detail, state_hash)
    reason = f"loop detected: {finding.detail}"
    return Finish(RunStatus.PARTIAL, reason, not_done=("a step that makes progress",), salvage=True)
