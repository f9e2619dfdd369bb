"""Conclude: turn the model's final answer into the run's output, validating typed output (G3 format).

A typed answer that fails its schema is sent back once per allowed correction, journaled as a
`guard_verdict`; when the corrections are used up the run ends PARTIAL with the raw text as its best output.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from keel._pipeline.escalate import hold_answer
from keel._pipeline.guard import HeldForReview, judge_output, judged, output_context
from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel._pipeline.tiers import escalate_tier
from keel.cost.tiers import ModelTiers
from keel.journal import EventKind, Phase
from keel.models.base import ModelResponse, UserMessage
from keel.result import RunStatus

__all__ = ["conclude", "deliver"]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def _unfence(text: str) -> str:
    """Small models like to wrap JSON in a Markdown code fence; accept it."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


async def conclude(state: RunState, response: ModelResponse) -> Finish | None:
    """Return the run's `Finish`, or None after asking the model for a corrected answer."""
    text = response.text or ""
    if response.finish_reason == "length":
        return await _cut_off(state, text)
    if response.finish_reason == "content_filter":
        return Finish(
            RunStatus.REJECTED,
            "the provider's content filter refused to answer",
            output=text or None,
            not_done=("final answer",),
        )
    adapter = state.spec.output_adapter
    if adapter is None:
        if not text.strip():
            return await _ask_again(
                state,
                "Your answer was empty. Reply with your final answer.",
                "empty answer",
                {"guard": "output_format", "verdict": "fail", "detail": "empty answer"},
            )
        confidence = _confidence(state, response.confidence, text, None)
        if await _sent_up(state, confidence):
            return None
        return await deliver(state, text, confidence=confidence)
    try:
        output = adapter.validate_json(_unfence(text))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        message = (
            f"Your answer does not match the required output schema: {problems}. "
            "Reply with only a JSON value that matches the schema."
        )
        return await _ask_again(
            state,
            message,
            f"output failed schema validation: {problems}",
            {"guard": "output_schema", "verdict": "fail", "detail": problems},
        )
    await record(state, EventKind.GUARD_VERDICT, {"guard": "output_schema", "verdict": "pass"}, phase=Phase.VALIDATION)
    answer = adapter.dump_json(output).decode()
    confidence = _confidence(state, response.confidence, answer, output)
    if await _sent_up(state, confidence):
        return None
    return await deliver(state, answer, confidence=confidence)


async def _sent_up(state: RunState, confidence: float | None) -> bool:
    """Ask one tier up for an answer less confident than `ModelTiers.min_confidence`; False: deliver it as it is.

    Bounded by the output corrections (`max_output_retries`) and the tier map's escalations.
    """
    tiers = state.spec.model
    floor = tiers.min_confidence if isinstance(tiers, ModelTiers) else None
    if (
        floor is None
        or confidence is None
        or confidence >= floor
        or state.output_retries >= state.spec.max_output_retries
    ):
        return False
    reason = f"the answer's confidence is {confidence:.2f}, below the tier map's {floor}"
    if not await escalate_tier(state, reason, "low_confidence"):
        return False  # the top tier's answer: a person may still be asked (Escalation.min_confidence)
    message = (
        f"Your answer's confidence ({confidence:.2f}) is too low. Check the task and the results again, then give "
        "your final answer."
    )
    state.output_retries += 1
    await record(state, EventKind.GUARD_VERDICT, {"guard": "tier_confidence", "verdict": "fail", "detail": reason,
                                                  "feedback": message}, phase=Phase.VALIDATION)  # fmt: skip
    state.messages.append(UserMessage(message))
    state.phase = Phase.VALIDATION
    return True


async def _cut_off(state: RunState, text: str) -> Finish | None:
    """An answer cut off at the output limit is asked for again, shorter — unless the budget had shrunk the limit.

    A call whose allowance the budget cut (the run's last affordable call) cannot be repeated with more room, so
    the cut text is the run's best output at once; otherwise the retry is one of the bounded output corrections.
    """
    limit = state.spec.max_output_tokens
    if state.last_output_allowance < limit:
        reason = f"the answer was cut off at the {state.last_output_allowance} output tokens the budget had left"
        return Finish(RunStatus.PARTIAL, reason, output=text, not_done=("complete final answer",))
    message = (
        f"Your answer was cut off at the output limit of {limit} tokens. Reply again with a shorter final answer "
        "that fits."
    )
    reason = f"the answer was cut off at the output-token limit ({limit})"
    detail = {"guard": "output_length", "verdict": "fail", "detail": reason}
    return await _ask_again(state, message, reason, detail, up_a_tier=False)  # a bigger model is no shorter


def _confidence(state: RunState, reported: float | None, text: str, output: Any) -> float | None:
    """The lowest known confidence: the model's self-report, a typed answer's ``confidence`` field, the scorer."""
    known = [reported]
    field = getattr(output, "confidence", None) if output is not None else None
    if isinstance(field, int | float) and not isinstance(field, bool):
        known.append(float(field))
    scorer = state.spec.escalation.scorer
    if scorer is not None and state.spec.escalation.min_confidence is not None:
        known.append(scorer(text, output_context(state)))
    values = [value for value in known if value is not None]
    return min(values) if values else None


async def deliver(
    state: RunState, answer: str, *, confidence: float | None, first_guard: int = 0, approved: bool = False
) -> Finish:
    """Judge a final answer and finish with it, or hold it for a person (a guard asks, or confidence is low).

    Args:
        state: the run.
        answer: the answer's text (a typed answer as JSON).
        confidence: the answer's confidence, when known.
        first_guard: guards before this one have judged it already (resuming a held answer).
        approved: a person released the answer: the confidence check is not repeated.
    """
    judged = await judge_output(state, answer, first=first_guard)
    if isinstance(judged, Finish):
        return judged
    adapter = state.spec.output_adapter
    if isinstance(judged, HeldForReview):
        held = judged.text if adapter is None else answer  # a typed answer is redacted field by field at the end
        return await hold_answer(
            state,
            held,
            reason=judged.reason,
            trigger="guard",
            guards_done=judged.guards_done,
            shown=_as_released(state, held),
        )
    if not approved and confidence is not None and state.spec.escalation.confidence_too_low(confidence):
        held = judged if adapter is None else answer
        shown = _as_released(state, held)
        reason = f"the answer's confidence is {confidence:.2f}, below {state.spec.escalation.min_confidence}"
        guards_done = len(state.spec.output_guards)
        return await hold_answer(state, held, reason=reason, trigger="confidence", guards_done=guards_done, shown=shown)
    if adapter is None:
        return Finish(RunStatus.COMPLETED, "answered", output=judged)
    return _typed_finish(state, adapter, answer, redacted=judged != answer or first_guard > 0)


def _as_released(state: RunState, held: str) -> Any:
    """What the reviewer is shown: the answer as it would go out (a typed one with its strings redacted)."""
    if state.spec.output_adapter is None:
        return held
    return _redact_strings(json.loads(held), state)


def _typed_finish(state: RunState, adapter: TypeAdapter[Any], answer: str, *, redacted: bool) -> Finish:
    """A typed answer's `Finish`; a redaction is applied to its string fields only.

    Numbers, booleans and the JSON structure are never rewritten, so a redacted answer keeps its schema.
    """
    output = adapter.validate_json(answer)
    if not redacted:
        return Finish(RunStatus.COMPLETED, "answered", output=output)
    cleaned = _redact_strings(adapter.dump_python(output, mode="json"), state)
    try:
        return Finish(RunStatus.COMPLETED, "answered", output=adapter.validate_python(cleaned))
    except ValidationError:
        return Finish(
            RunStatus.REJECTED,
            "the answer had to be redacted, and the redacted answer no longer fits the output schema",
            output=None,
            not_done=("an answer that passes the output guards",),
        )


def _redact_strings(value: Any, state: RunState) -> Any:
    """`value` with every string passed through the redacting guards (the verdict on the whole was journaled)."""
    if isinstance(value, str):
        for guard in state.spec.output_guards:
            verdict = judged(guard, value, output_context(state))
            if verdict.action == "redact" and verdict.text is not None:
                value = verdict.text
        return value
    if isinstance(value, dict):
        return {key: _redact_strings(item, state) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_strings(item, state) for item in value]
    return value


async def _ask_again(
    state: RunState, message: str, reason: str, verdict: dict[str, Any], *, up_a_tier: bool = True
) -> Finish | None:
    """Journal the failed check, then send the model `message` when a correction is left, else end PARTIAL.

    The message is journaled as the verdict's ``feedback``, so a resumed run rebuilds the same conversation.
    """
    limit = state.spec.max_output_retries
    if up_a_tier and state.output_retries < limit:  # a correction goes one tier up from a cheaper tier
        await escalate_tier(state, reason, "invalid_answer")
    if state.output_retries >= limit:
        await record(state, EventKind.GUARD_VERDICT, verdict, phase=Phase.VALIDATION)
        return Finish(
            RunStatus.PARTIAL,
            f"{reason} (after {limit} corrections)",
            not_done=("valid final answer",),
        )
    await record(state, EventKind.GUARD_VERDICT, {**verdict, "feedback": message}, phase=Phase.VALIDATION)
    state.output_retries += 1
    state.messages.append(UserMessage(message))
    state.phase = Phase.VALIDATION
    return None
