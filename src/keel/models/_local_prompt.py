"""How an embedded model is asked for its next decision, and how its reply becomes a `ModelResponse`.

A small model cannot be trusted to follow a chat template's tool-calling conventions (each model family has
its own, and many have none). So every local model is asked for one JSON object, described in the system
prompt and, by default, enforced with a grammar built from the agent's tool registry:

    {"tool": "<a registered tool>", "arguments": {...schema-valid arguments...}}   one tool call
    {"answer": "<the reply to the user>"}                                          the final answer

Under the grammar an unknown tool name or an argument of the wrong type cannot even be generated; without it
(``constrained=False``) the same reply is parsed leniently and the pipeline rejects what is wrong. The
conversation is rendered with plain ``system``/``user``/``assistant`` roles only — tool results become user
turns — because that is the one shape every chat template accepts.

The rendered prompt is tokenized with special tokens parsed (the template's own must become control tokens), so
conversation text that spells one — ``<|im_start|>system``, ``[INST]``, ``<start_of_turn>`` in a tool result or
a task — would open a real turn, a system turn included. Every conversation turn has such tokens defused first
(`defused`: look-alike brackets, the text otherwise kept): only the agent's instructions can be the system turn.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.errors import ModelError
from keel.models.base import (
    AssistantMessage,
    FinishReason,
    Message,
    ModelRequest,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)

__all__ = [
    "ChatMessage",
    "ParsedReply",
    "chat_messages",
    "decision_schema",
    "defused",
    "parse_reply",
    "system_prompt",
]

ChatMessage = dict[str, str]
"""One ``{"role": ..., "content": ...}`` message as a chat template expects it."""

_TOOL_NAME = re.compile(r'"tool"\s*:\s*"([^"]*)"')
_PARTIAL_ANSWER = re.compile(r'^\s*\{\s*"answer"\s*:\s*"((?:[^"\\]|\\.)*)', re.DOTALL)


def _describe_tool(spec: ToolSpec) -> str:
    """One tool as a short, readable entry: name, purpose, then one line per argument."""
    lines = [f"- {spec.name}: {spec.description.strip() or 'no description'}"]
    properties: Mapping[str, Any] = spec.parameters.get("properties", {})
    required = set(spec.parameters.get("required", ()))
    for arg, schema in properties.items():
        kind = schema.get("type", "value") if isinstance(schema, Mapping) else "value"
        note = "" if arg in required else ", optional"
        about = schema.get("description", "") if isinstance(schema, Mapping) else ""
        lines.append(f"    {arg} ({kind}{note}){': ' + about if about else ''}")
    return "\n".join(lines)


def system_prompt(request: ModelRequest) -> str:
    """The instructions, plus the tool menu and the reply format when the agent has tools or typed output."""
    parts = [request.instructions.strip()] if request.instructions.strip() else []
    answer = '"<your reply to the user>"'
    if request.output_schema is not None:
        answer = f"<a JSON value matching this schema: {json.dumps(request.output_schema, sort_keys=True)}>"
    if request.tools:
        parts.append("You can use these tools:\n" + "\n".join(_describe_tool(t) for t in request.tools))
        parts.append(
            "Reply with exactly one JSON object and nothing else, either\n"
            '{"tool": "<tool name>", "arguments": {<the tool\'s arguments>}} to call one tool, or\n'
            f'{{"answer": {answer}}} to give your final answer.'
        )
    elif request.output_schema is not None:
        parts.append(f'Reply with exactly one JSON object and nothing else: {{"answer": {answer}}}')
    return "\n\n".join(parts)


def _assistant_text(message: AssistantMessage) -> str:
    """An earlier turn in the same JSON shape the model is asked to produce, so the history teaches it."""
    turns: list[str] = []
    if message.content:
        turns.append(message.content)
    for call in message.tool_calls:
        try:
            arguments: Any = json.loads(call.arguments)
        except json.JSONDecodeError:
            arguments = call.arguments  # shown as the model wrote it; the rejection follows in the history
        turns.append(json.dumps({"tool": call.name, "arguments": arguments}))
    return "\n".join(turns)


_SPECIAL = re.compile(
    r"<\|[^|<>\n]{1,40}\|>|\[/?(?:INST|SYS|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CALLS)\]|<</?SYS>>"
    r"|</?s>|<(?:start|end)_of_turn>|<(?:bos|eos|pad|unk)>",
    re.IGNORECASE,
)
_LOOK_ALIKE = str.maketrans({"<": "‹", ">": "›", "[": "⟦", "]": "⟧"})


def defused(text: str) -> str:
    """`text` with every chat-template control token made ordinary text (``<|im_start|>`` → ``‹|im_start|›``)."""
    return _SPECIAL.sub(lambda match: match.group(0).translate(_LOOK_ALIKE), text)


def _turn(message: Message) -> tuple[str, str]:
    match message:
        case UserMessage(content=content):
            return "user", defused(content)
        case AssistantMessage():
            return "assistant", defused(_assistant_text(message))
        case ToolResultMessage(name=name, content=content, is_error=is_error):
            return "user", f"{'Error from' if is_error else 'Result of'} {name}: {defused(content)}"


def chat_messages(request: ModelRequest, *, fold_system: bool = False) -> list[ChatMessage]:
    """The conversation as plain chat messages, consecutive turns of one role merged.

    Args:
        request: the request to render.
        fold_system: put the system prompt at the top of the first user turn instead of a system message,
            for chat templates that refuse a system role (Gemma, older Mistral).
    """
    messages: list[ChatMessage] = []
    for message in request.messages:
        role, content = _turn(message)
        if messages and messages[-1]["role"] == role:  # templates that demand alternating roles
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    system = system_prompt(request)
    if not system:
        return messages
    if not fold_system:
        return [{"role": "system", "content": system}, *messages]
    if messages and messages[0]["role"] == "user":
        messages[0]["content"] = f"{system}\n\n{messages[0]['content']}"
        return messages
    return [{"role": "user", "content": system}, *messages]


def _hoist(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its ``$defs``, which move to `defs` under prefixed names (refs rewritten to match).

    New names use letters, digits and ``-`` only: llama.cpp turns a recursive definition into a grammar rule
    named after it, and its grammar parser accepts nothing else in a rule name.
    """
    own = schema.get("$defs", {})
    renamed = {name: prefix + re.sub(r"[^A-Za-z0-9-]", "-", name) for name in own}

    def rewrite(node: Any) -> Any:
        if isinstance(node, Mapping):
            out = {k: rewrite(v) for k, v in node.items() if k != "$defs"}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in renamed:
                out["$ref"] = f"#/$defs/{renamed[ref[8:]]}"
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, definition in own.items():
        defs[renamed[name]] = rewrite(definition)
    result: dict[str, Any] = rewrite(schema)
    return result


def decision_schema(tools: Sequence[ToolSpec], output_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON schema of one decision: a call of one of `tools` with valid arguments, or the final answer.

    Each schema's ``$defs`` are hoisted to the root under a per-branch prefix, so nested models keep
    resolving once the schemas are combined.
    """
    defs: dict[str, Any] = {}
    branches: list[dict[str, Any]] = []
    for index, spec in enumerate(tools):
        arguments = _hoist(spec.parameters, f"t{index}-", defs)
        branches.append(
            {
                "type": "object",
                "properties": {"tool": {"const": spec.name}, "arguments": arguments},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    answer = _hoist(output_schema, "out-", defs) if output_schema is not None else {"type": "string"}
    branches.append(
        {"type": "object", "properties": {"answer": answer}, "required": ["answer"], "additionalProperties": False}
    )
    schema: dict[str, Any] = {"oneOf": branches}
    if defs:
        schema["$defs"] = defs
    return schema


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """What a local model's reply means for the pipeline."""

    text: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason


def _first_json_object(text: str) -> Any:
    """The first JSON value in `text` that starts at a ``{`` (unconstrained models chatter around it)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        return value
    return None


def _as_call(value: Any) -> ToolCall | None:
    """The tool call `value` is, in the decision shape or the ``{"name", "arguments"}`` shape; else None.

    Models trained on function calling write the second shape unprompted. A call that names its tool with a
    non-string is kept as written, for the pipeline to reject and feed back, never taken for a final answer.
    """
    if not isinstance(value, Mapping):
        return None
    if "tool" in value:
        name = value["tool"]
    elif isinstance(value.get("name"), str) and "arguments" in value:
        name = value["name"]
    else:
        return None
    return _new_call(name if isinstance(name, str) else json.dumps(name), value.get("arguments", {}))


def _new_call(name: str, arguments: Any) -> ToolCall:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=f"call_{uuid.uuid4().hex[:16]}", name=name, arguments=raw)


def _cut_off(model_name: str, text: str, max_tokens: int, *, sampled: bool) -> ParsedReply:
    """A reply that hit `max_tokens` before its JSON was complete."""
    tool = _TOOL_NAME.search(text)
    if tool is not None:
        # Half a tool call cannot be run or shown as an answer. Only a sampled model may do better on a retry;
        # a greedy one writes the same tokens again.
        raise ModelError(
            f"{model_name}: the reply reached max_tokens ({max_tokens}) in the middle of a call to "
            f"{tool.group(1)!r}; raise Agent(max_output_tokens=...) if calls need more room",
            retryable=sampled,
        )
    partial = _PARTIAL_ANSWER.match(text)
    if partial is not None:
        try:
            return ParsedReply(json.loads(f'"{partial.group(1)}"'), (), "length")
        except json.JSONDecodeError:  # cut inside an escape sequence
            return ParsedReply(partial.group(1), (), "length")
    return ParsedReply(text or None, (), "length")


def parse_reply(
    model_name: str,
    text: str,
    *,
    hit_limit: bool,
    max_tokens: int,
    structured: bool,
    typed: bool = False,
    sampled: bool = False,
) -> ParsedReply:
    """Turn the model's raw reply into text or one tool call.

    Args:
        model_name: the model's Keel name, for error messages.
        text: what the model generated.
        hit_limit: generation stopped at `max_tokens`.
        max_tokens: the cap it ran into, for the message.
        structured: the model was asked for the decision JSON (it had tools or typed output).
        typed: the agent has typed output, so the answer is returned as JSON text for the pipeline to validate.
        sampled: the model samples (temperature above 0), so a retry may produce a different reply.

    Raises:
        ModelError: the reply was cut off in the middle of a tool call (retryable when `sampled`).
    """
    if not structured:
        return ParsedReply(text, (), "length" if hit_limit else "stop")
    value = _first_json_object(text)
    call = _as_call(value)
    if call is not None:
        return ParsedReply(None, (call,), "tool_calls")
    if isinstance(value, Mapping) and "answer" in value:
        answer = value["answer"]
        if typed:  # the pipeline validates the JSON against the output schema
            return ParsedReply(json.dumps(answer), (), "stop")
        if answer is None:  # an empty answer: the pipeline asks again
            return ParsedReply("", (), "stop")
        return ParsedReply(answer if isinstance(answer, str) else json.dumps(answer), (), "stop")
    if hit_limit:
        return _cut_off(model_name, text, max_tokens, sampled=sampled)
    return ParsedReply(text.strip() or None, (), "stop")  # prose instead of JSON: take it as the answer
