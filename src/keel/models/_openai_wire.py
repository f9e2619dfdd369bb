"""Keel's provider-neutral messages to and from OpenAI's Chat Completions wire format.

Pure functions, no I/O: `chat_params` builds the JSON body (minus ``model``) and `to_model_response` reads
the SDK's `ChatCompletion`. Kept apart from `keel.models.openai` so the mapping can be read and tested on its
own, and because every OpenAI-compatible server (vLLM, Ollama, llama.cpp) speaks this same format.
"""

from __future__ import annotations

from typing import Any, Literal

from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall

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

__all__ = ["ERROR_PREFIX", "OUTPUT_SCHEMA_NAME", "MaxTokensParam", "chat_params", "to_model_response"]

MaxTokensParam = Literal["max_completion_tokens", "max_tokens"]
"""The body field that caps the response length (see `OpenAIModel` for which one is sent where)."""

ERROR_PREFIX = "Error: "
"""Chat Completions has no error flag on tool results, so a failed call's content is prefixed with this."""

OUTPUT_SCHEMA_NAME = "final_output"
"""The name under which the typed-output JSON schema is sent in ``response_format``."""

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the pre-2024 name some compatible servers still send
    "length": "length",
    "content_filter": "content_filter",
}


def _message(message: Message) -> dict[str, Any]:
    match message:
        case UserMessage(content=content):
            return {"role": "user", "content": content}
        case AssistantMessage(content=content, tool_calls=calls):
            # "" rather than null when there is no text: OpenAI accepts both, but some compatible servers
            # (llama-cpp-python) reject a null content, even next to tool calls.
            wire: dict[str, Any] = {"role": "assistant", "content": content or ""}
            if calls:
                wire["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ]
            return wire
        case ToolResultMessage(call_id=call_id, content=content, is_error=is_error):
            if is_error and not content.startswith(ERROR_PREFIX):
                content = ERROR_PREFIX + content
            return {"role": "tool", "tool_call_id": call_id, "content": content}


def chat_params(
    request: ModelRequest,
    *,
    max_tokens_param: MaxTokensParam,
    temperature: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for `request`, except ``model``.

    A typed output is enforced with ``response_format`` only when the request has no tools: a forced JSON
    response would keep the model from calling them, so with tools the schema is asked for in the system
    prompt instead (and validated by the pipeline either way). `temperature` and `seed` are sent only when
    set, so that the server's own defaults apply otherwise.
    """
    use_response_format = request.output_schema is not None and not request.tools
    system = request.instructions
    if request.output_schema is not None and not use_response_format:
        system = json_schema_instruction(system, request.output_schema)
    messages = [{"role": "system", "content": system}] if system else []
    messages.extend(_message(m) for m in request.messages)
    params: dict[str, Any] = {"messages": messages, max_tokens_param: request.max_output_tokens}
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in request.tools
        ]
        # "auto" is OpenAI's default, but some compatible servers (llama-cpp-python) ignore the tools unless
        # it is sent.
        params["tool_choice"] = "auto"
    if temperature is not None:
        params["temperature"] = temperature
    if seed is not None:
        params["seed"] = seed
    if use_response_format:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": OUTPUT_SCHEMA_NAME, "schema": request.output_schema, "strict": False},
        }
    return params


def to_model_response(completion: ChatCompletion, model_name: str) -> ModelResponse:
    """Read the first choice of `completion` into a `ModelResponse`.

    Tool-call arguments are kept as the raw text the model produced, valid JSON or not: the pipeline
    validates them and feeds errors back to the model. A refusal (structured outputs) becomes the text with
    finish reason ``content_filter``.

    Raises:
        ModelError: no choices, or neither text nor tool calls (retryable: a new sample may succeed). A
            response cut off by the length cap, or refused, is returned even when empty, so its tokens are accounted.
    """
    if not completion.choices:
        raise ModelError(f"{model_name}: empty response (no choices)", retryable=True)
    choice = completion.choices[0]
    message = choice.message
    calls = tuple(
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
        for c in message.tool_calls or ()
        if isinstance(c, ChatCompletionMessageFunctionToolCall)  # Keel never declares custom tools
    )
    text = message.content or None
    finish = _FINISH_REASONS.get(choice.finish_reason or "", "unknown")
    if text is None and message.refusal:
        text, finish = message.refusal, "content_filter"
    if text is None and not calls and finish not in ("length", "content_filter"):
        raise ModelError(f"{model_name}: empty response (neither text nor tool calls)", retryable=True)
    usage = completion.usage
    return ModelResponse(
        text=text,
        tool_calls=calls,
        usage=RequestUsage(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        ),
        finish_reason=finish,
        provider_id=completion.id,
        model_name=completion.model,
    )
