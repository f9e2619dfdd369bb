"""What a failing component raised, as text for the model and the journal, and which failures stop the program.

A tool or a model adapter is someone else's code: whatever it raises — a `ValueError`, a `KeyError`, a custom
`BaseException`, `SystemExit`, a `GeneratorExit` — is a failure of that call, journaled, and the run goes on or
ends with a status. Only two things end a run by raising through `run`/`run_sync`: the caller's own cancellation
(`asyncio.CancelledError` while the run's task is being cancelled) and Ctrl-C (`KeyboardInterrupt`), so a person can
always stop the program.
"""

from __future__ import annotations

import asyncio
from typing import Any

from keel.models.base import ModelResponse, ToolCall

__all__ = ["describe", "malformed", "stops_the_program"]


def describe(exc: BaseException) -> str:
    """``Type: message`` for any exception, even one whose ``__str__`` raises."""
    try:
        message = str(exc)
    except BaseException as broken:  # a custom exception's __str__ can fail like any code
        message = f"<its message could not be read: {type(broken).__name__}>"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def stops_the_program(exc: BaseException) -> bool:
    """True for Ctrl-C, and for a cancellation of the run itself (not one a component raised of its own accord)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, asyncio.CancelledError):
        current = asyncio.current_task()
        return current is not None and current.cancelling() > 0
    return False


def malformed(response: Any) -> str | None:
    """What is wrong with what a model adapter returned, or None for a well-formed `ModelResponse`.

    The journal, the budget and the next request rely on these types; a response that breaks them is a failed
    call (journaled with this description), not an exception from deep inside the run.
    """
    if not isinstance(response, ModelResponse):
        return f"a {type(response).__name__}, not a ModelResponse"
    fields = {"text": response.text, "reason": response.reason, "provider_id": response.provider_id}
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            return f"a {name} of type {type(value).__name__}, not text"
    if not isinstance(response.finish_reason, str):
        return f"a finish_reason of type {type(response.finish_reason).__name__}, not text"
    if not isinstance(response.tool_calls, tuple | list) or not isinstance(response.notes, tuple | list):
        return "tool_calls or notes that are not a sequence"
    for call in response.tool_calls:
        if not isinstance(call, ToolCall) or not all(isinstance(v, str) for v in (call.id, call.name, call.arguments)):
            return f"a tool call that is not a ToolCall of text id, name and arguments: {call!r:.200}"
    if not all(isinstance(note, str) for note in response.notes):
        return "notes that are not text"
    confidence = response.confidence
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1
    ):
        return f"a confidence of {confidence!r:.50}, not a number between 0 and 1"
    return None
