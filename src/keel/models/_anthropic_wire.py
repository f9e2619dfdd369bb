"""Keel's provider-neutral messages to and from Anthropic's Messages API wire format.

Pure functions, no I/O. The Messages API differs from Chat Completions in ways that matter here: roles must
alternate (so consecutive same-role turns are merged, and all tool results of one turn travel in ONE user
message), tool calls carry their input as a JSON object rather than text, and there is no response format to
enforce a schema (it is asked for in the system prompt).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from anthropic.types import Message as AnthropicMessage
from anthropic.types import TextBlock, ToolUseBlock

from keel.errors import ModelError
from keel.models._provider import json_schema_instruction
from keel.models.base import (
    AssistantMessage,
    FinishReason,
    Message,
    ModelRequest,
    ModelResponse,
    RequestUsage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)

__all__ = ["message_params", "to_model_response"]

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",  # cut off as well, by the context window instead of the cap
    "refusal": "content_filter",
}


def _tool_input(arguments: str) -> dict[str, Any]:
    """The arguments object of a past tool call.

    Anthropic needs an object, but a model may have produced text that is not one (the pipeline rejected that
    call and told the model so in the tool result); such a call is replayed with an empty input, which keeps
    the history valid while the error message explains what went wrong.
    """
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _blocks(message: Message) -> tuple[Literal["user", "assistant"], list[dict[str, Any]]]:
    match message:
        case UserMessage(content=content):
            return "user", [{"type": "text", "text": content}] if content else []
        case AssistantMessage(content=content, tool_calls=calls):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            blocks.extend(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c.arguments)} for c in calls
            )
            return "assistant", blocks
        case ToolResultMessage(call_id=call_id, content=content, is_error=is_error):
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "is_error": is_error}
            if content:  # the API rejects empty text, and content is optional
                block["content"] = content
            return "user", [block]


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Keel messages as alternating user/assistant turns, merging consecutive turns of the same role."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = _blocks(message)
        if not blocks:
            continue  # an empty turn is invalid on the wire and says nothing
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def message_params(request: ModelRequest) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` for `request`, except ``model``."""
    params: dict[str, Any] = {
        "max_tokens": request.max_output_tokens,
        "messages": _messages(request.messages),
    }
    system = request.instructions
    if request.output_schema is not None:
        system = json_schema_instruction(system, request.output_schema)
    if system:
        params["system"] = system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
    return params


def to_model_response(message: AnthropicMessage, model_name: str) -> ModelResponse:
    """Read an Anthropic `Message` into a `ModelResponse`.

    Text blocks are joined without a separator (the API splits one answer into several blocks around
    citations); tool inputs are serialised back to JSON text, the form Keel keeps for every provider. Input
    tokens include cache writes and reads, so a run is charged for every token the provider processed.

    Raises:
        ModelError: neither text nor tool calls (retryable). A response cut off by the length cap, or refused, is
            returned even when empty, so its tokens are accounted.
    """
    text = "".join(b.text for b in message.content if isinstance(b, TextBlock)) or None
    calls = tuple(
        ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input))
        for b in message.content
        if isinstance(b, ToolUseBlock)
    )
    finish = _STOP_REASONS.get(message.stop_reason or "", "unknown")
    if text is None and not calls and finish not in ("length", "content_filter"):
        raise ModelError(f"{model_name}: empty response (neither text nor tool calls)", retryable=True)
    usage = message.usage
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return ModelResponse(
        text=text,
        tool_calls=calls,
        usage=RequestUsage(input_tokens=usage.input_tokens + cached, output_tokens=usage.output_tokens),
        finish_reason=finish,
        provider_id=message.id,
        model_name=message.model,
    )
