"""Pure wire mapping (no HTTP): Chat Completions bodies and responses, and the shared error translation."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion

from keel.models import (
    AssistantMessage,
    ModelRequest,
    RequestUsage,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from keel.models._openai_wire import chat_params, to_model_response
from keel.models._provider import connection_error, redact, status_error

SYSTEM = "You help customers with orders. Be brief."
GET_ORDER = ToolSpec("get_order", "Look up an order by id.", {"type": "object", "properties": {}})
SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


def ask(text: str, *history, tools=(GET_ORDER,), **kwargs) -> ModelRequest:
    return ModelRequest(SYSTEM, (UserMessage(text), *history), tools=tools, **kwargs)


def test_typed_output_with_tools_is_asked_for_in_the_system_prompt() -> None:
    params = chat_params(ask("Where is order 1234?", output_schema=SCHEMA), max_tokens_param="max_tokens")

    assert "response_format" not in params
    system = params["messages"][0]["content"]
    assert system.startswith(SYSTEM + "\n\n")
    assert json.dumps(SCHEMA, sort_keys=True) in system
    assert params["max_tokens"] == 1024


def _completion(**choice) -> ChatCompletion:
    message = {"role": "assistant", "content": None, **choice.pop("message", {})}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1721650511,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", **choice}],
    }
    return ChatCompletion.model_construct(**body)  # as the SDK reads responses: no validation


def test_missing_usage_counts_as_zero() -> None:
    response = to_model_response(_completion(message={"content": "hi"}), "openai:x")
    assert response.usage == RequestUsage(0, 0)


def test_unknown_finish_reason_and_refusal() -> None:
    odd = to_model_response(_completion(message={"content": "hi"}, finish_reason="eos"), "openai:x")
    assert odd.finish_reason == "unknown"
    refused = to_model_response(_completion(message={"refusal": "I can't help with that."}), "openai:x")
    assert (refused.text, refused.finish_reason) == ("I can't help with that.", "content_filter")


def test_error_results_are_prefixed_once() -> None:
    history = (ToolResultMessage("c1", "t", "Error: boom", is_error=True), ToolResultMessage("c2", "t", "ok"))
    params = chat_params(ask("x", *history), max_tokens_param="max_completion_tokens")
    assert [m["content"] for m in params["messages"][2:]] == ["Error: boom", "ok"]


def test_tool_choice_auto_goes_out_only_with_tools() -> None:
    # OpenAI defaults to "auto" anyway; llama-cpp-python's server ignores the tools unless it is sent.
    assert chat_params(ask("x"), max_tokens_param="max_tokens")["tool_choice"] == "auto"
    assert "tool_choice" not in chat_params(ask("x", tools=()), max_tokens_param="max_tokens")


def test_an_assistant_turn_without_text_is_sent_with_empty_content() -> None:
    # llama-cpp-python rejects "content": null next to tool calls; OpenAI accepts "" as well.
    calls = (ToolCall("c1", "get_order", "{}"),)
    history = (AssistantMessage(tool_calls=calls), ToolResultMessage("c1", "get_order", "{}"), AssistantMessage())
    messages = chat_params(ask("x", *history), max_tokens_param="max_tokens")["messages"]
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["", ""]


def test_short_dummy_keys_are_not_replaced_verbatim() -> None:
    assert redact("max tokens exceeded", "x") == "max tokens exceeded"
    assert redact("bad key sk-live-abcdefgh1234 and sk-proj-****wxyz", "sk-live-abcdefgh1234") == (
        "bad key [redacted] and [redacted]"
    )


@pytest.mark.parametrize(
    ("status", "headers", "retryable"),
    [
        (500, {"x-should-retry": "false"}, False),  # the provider's own hint wins
        (400, {"x-should-retry": "true"}, True),
        (408, {}, True),
        (409, {}, True),
        (404, {}, False),
        (503, {}, True),
    ],
)
def test_retryable_classification(status: int, headers: dict[str, str], retryable: bool) -> None:
    error = status_error("openai:x", status=status, body=None, headers=headers, fallback="", secret=None, key_env="K")
    assert (error.retryable, error.status_code) == (retryable, status)


def test_anthropic_error_codes_in_details_are_used() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Spend limit reached.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    error = status_error("anthropic:x", status=429, body=body, headers={}, fallback="", secret=None, key_env="K")
    assert error.retryable is False
    assert "enforced_spend_limit_reached" in str(error) and "Spend limit reached." in str(error)


def test_connection_errors_hide_credentials_in_the_base_url() -> None:
    error = connection_error("openai:x", timed_out=False, timeout_s=5, base_url="https://bob:s3cret@proxy.internal/v1")
    assert "s3cret" not in str(error) and "bob" not in str(error)
    assert "https://proxy.internal/v1" in str(error)
    assert error.retryable is True
