"""Conclude: turn the model's final answer into the run's output, validating typed output (G3 format).

A typed answer that fails its schema is sent back once per allowed correction, journaled as a
`guard_verdict`; when the corrections are used up the run ends PARTIAL with the raw text as its best output.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from keel._pipeline.guard import judge_output
from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.guardrails.base import GuardContext
from keel.journal import EventKind, Phase
from keel.models.base import ModelResponse, UserMessage
from keel.result import RunStatus

__all__ = ["conclude"]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def _unfence(text: str) -> str:
    """Small models like to wrap JSON in a Markdown code fence; accept it."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


async def conclude(state: RunState, response: ModelResponse) -> Finish | None:
    """Return the run's `Finish`, or None after asking the model for a corrected answer."""
    text = response.text or ""
    if response.finish_reason == "length":
        return Finish(
            RunStatus.PARTIAL,
            f"the answer was cut off at the output-token limit ({state.spec.max_output_tokens})",
            output=text,
            not_done=("complete final answer",),
        )
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
            return await _ask_again(state, "Your answer was empty. Reply with your final answer.", "empty answer")
        judged = await judge_output(state, text)
        return judged if isinstance(judged, Finish) else Finish(RunStatus.COMPLETED, "answered", output=judged)
    try:
        output = adapter.validate_json(_unfence(text))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        await record(
            state,
            EventKind.GUARD_VERDICT,
            {"guard": "output_schema", "verdict": "fail", "detail": problems},
            phase=Phase.VALIDATION,
        )
        message = (
            f"Your answer does not match the required output schema: {problems}. "
            "Reply with only a JSON value that matches the schema."
        )
        return await _ask_again(state, message, f"output failed schema validation: {problems}")
    await record(state, EventKind.GUARD_VERDICT, {"guard": "output_schema", "verdict": "pass"}, phase=Phase.VALIDATION)
    return await _judge_typed(state, adapter, output)


async def _judge_typed(state: RunState, adapter: TypeAdapter[Any], output: Any) -> Finish:
    """Run the output guards on a typed answer's JSON; a redaction is applied to its string fields only.

    Numbers, booleans and the JSON structure are never rewritten, so a redacted answer keeps its schema.
    """
    original = adapter.dump_json(output).decode()
    judged = await judge_output(state, original)
    if isinstance(judged, Finish):
        return judged
    if judged == original:
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
            verdict = guard.check(value, GuardContext(task=state.spec.task, origin="output"))
            if verdict.action == "redact" and verdict.text is not None:
                value = verdict.text
        return value
    if isinstance(value, dict):
        return {key: _redact_strings(item, state) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_strings(item, state) for item in value]
    return value


async def _ask_again(state: RunState, message: str, reason: str) -> Finish | None:
    limit = state.spec.max_output_retries
    if state.output_retries >= limit:
        return Finish(
            RunStatus.PARTIAL,
            f"{reason} (after {limit} corrections)",
            not_done=("valid final answer",),
        )
    state.output_retries += 1
    state.messages.append(UserMessage(message))
    state.phase = Phase.VALIDATION
    return None
