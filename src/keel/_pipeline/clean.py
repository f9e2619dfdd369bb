"""Text from outside a run — the task, a model's output, a tool's result — made storable and sendable.

A lone surrogate (U+D800 to U+DFFF alone: a decoding bug upstream) cannot be encoded as UTF-8, so no provider,
JSON journal or database can take it; a NUL character is refused by PostgreSQL's text columns. Both are replaced
with U+FFFD (the replacement character) where the text enters the run, so every store keeps the same journal,
the model sees what the journal says, and a resumed run rebuilds exactly what the first process had.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from keel.models.base import ModelResponse, ToolCall

__all__ = ["REPLACEMENT", "clean_response", "clean_text", "clean_value"]

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_DEPTH = 64


def clean_text(text: str) -> str:
    """`text` with NUL characters and lone surrogates replaced by U+FFFD (the same object when it has none)."""
    if "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def clean_value(value: Any, depth: int = 0) -> Any:
    """`value` with every string in it (dict keys included) cleaned; containers deeper than 64 are kept as is."""
    if isinstance(value, str):
        return clean_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {clean_value(k, depth + 1): clean_value(v, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):  # exactly these: a subclass (a named tuple) may not rebuild from one iterable
        return type(value)(clean_value(v, depth + 1) for v in value)
    return value


def clean_response(response: ModelResponse) -> ModelResponse:
    """A well-formed response (`failure.malformed`) with its text, reason, ids and tool calls cleaned."""

    def opt(text: str | None) -> str | None:
        return None if text is None else clean_text(text)

    calls = tuple(ToolCall(clean_text(c.id), clean_text(c.name), clean_text(c.arguments)) for c in response.tool_calls)
    return dataclasses.replace(
        response,
        text=opt(response.text),
        tool_calls=calls,
        reason=opt(response.reason),
        provider_id=opt(response.provider_id),
        model_name=clean_text(response.model_name) if isinstance(response.model_name, str) else "",
        notes=tuple(clean_text(note) for note in response.notes),
    )
