"""AnthropicModel against Messages API exchanges in the API's exact wire format (tests/cassettes/anthropic_*.json).

The cassettes are written by hand, not recorded from the live API; test_models_cassettes.py validates them
against the `anthropic` SDK's own types.
"""

from __future__ import annotations

import json
import traceback

import httpx2
import pytest

import keel.models
from _replay import GET_ORDER, ORDER_1234, SYSTEM, Replay, load_cassette
from keel.errors import MissingCredentialsError, ModelError, ModelRequestsDisabledError
from keel.models import (
    AssistantMessage,
    ModelRequest,
    RequestUsage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from keel.models._anthropic_wire import message_params
from keel.models.anthropic import AnthropicModel, tool_use_prompt_tokens
from keel.models.tokens import count_request_tokens

API_KEY = "sk-ant-api03-keeltest0123456789abcdefghijklmnopqrstuvwxyz-AAAA"


def ask(text: str, *history, tools=(GET_ORDER,), **kwargs) -> ModelRequest:
    return ModelRequest(SYSTEM, (UserMessage(text), *history), tools=tools, **kwargs)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", True)


@pytest.fixture
async def cassette():
    """`cassette(name)` -> (model, replay); every replay is verified at teardown."""
    opened: list[tuple[Replay, httpx2.AsyncClient]] = []

    def use(name: str) -> tuple[AnthropicModel, Replay]:
        replay = Replay(name)
        client = replay.client()
        opened.append((replay, client))
        return AnthropicModel("claude-haiku-4-5", api_key=API_KEY, http_client=client, max_retries=0), replay

    yield use
    for replay, client in opened:
        await client.aclose()
        replay.verify()


async def test_tool_use_then_tool_result_and_final_answer(cassette) -> None:
    model, replay = cassette("anthropic_tool_use.json")

    first = await model.request(ask("Where is order 1234?"))

    assert first.text == "I'll look that order up."
    assert first.tool_calls == (ToolCall("toolu_01A09q90qw90lq917835lq9", "get_order", '{"order_id": "1234"}'),)
    assert first.finish_reason == "tool_calls"
    assert first.usage == RequestUsage(input_tokens=412, output_tokens=68)
    assert first.provider_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert first.model_name == "claude-haiku-4-5-20251001"

    (call,) = first.tool_calls
    second = await model.request(
        ask(
            "Where is order 1234?",
            AssistantMessage(content=first.text, tool_calls=first.tool_calls),
            ToolResultMessage(call.id, call.name, ORDER_1234),
        )
    )

    assert second.text == "Order 1234 has shipped with UPS and should arrive on July 22, 2024."
    assert second.finish_reason == "stop"
    # 97 uncached + 12 written to the cache + 412 read from it: every processed token is charged.
    assert second.usage == RequestUsage(input_tokens=97 + 12 + 412, output_tokens=24)
    sent = replay.body(1)
    assert sent["system"] == SYSTEM
    assert sent["tools"] == [
        {"name": "get_order", "description": "Look up an order by id.", "input_schema": GET_ORDER.parameters}
    ]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_order",
        "input": {"order_id": "1234"},
    }
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "is_error": False, "content": ORDER_1234}
    ]


async def test_parallel_tool_results_travel_in_one_user_message(cassette) -> None:
    model, replay = cassette("anthropic_parallel_tool_use.json")

    first = await model.request(ask("Where are orders 1234 and 5678?"))

    assert first.text is None
    assert [json.loads(c.arguments) for c in first.tool_calls] == [{"order_id": "1234"}, {"order_id": "5678"}]
    one, two = first.tool_calls
    second = await model.request(
        ask(
            "Where are orders 1234 and 5678?",
            AssistantMessage(tool_calls=first.tool_calls),
            ToolResultMessage(one.id, one.name, ORDER_1234),
            ToolResultMessage(two.id, two.name, "order 5678 not found", is_error=True),
        )
    )

    assert second.text is not None and "5678" in second.text
    last = replay.body(1)["messages"][-1]
    assert last["role"] == "user"
    assert [(b["tool_use_id"], b["is_error"]) for b in last["content"]] == [(one.id, False), (two.id, True)]


async def test_typed_output_is_asked_for_in_the_system_prompt(cassette) -> None:
    model, replay = cassette("anthropic_typed_output.json")
    schema = {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "carrier": {"type": "string"}},
        "required": ["order_id", "carrier"],
    }
    request = ModelRequest(
        "Extract the order details.",
        (UserMessage("Order 1234 shipped with UPS, arriving July 22."),),
        output_schema=schema,
        max_output_tokens=256,
    )

    response = await model.request(request)

    assert json.loads(response.text or "") == {"order_id": "1234", "carrier": "UPS"}
    assert json.dumps(schema, sort_keys=True) in replay.body(0)["system"]


@pytest.mark.parametrize(
    ("name", "status", "retryable", "fragment"),
    [
        ("anthropic_overloaded.json", 529, True, "overloaded"),
        ("anthropic_rate_limited.json", 429, True, "retry after 14s"),
        ("anthropic_server_error.json", 500, True, "api_error"),
        ("anthropic_unauthorized.json", 401, False, "ANTHROPIC_API_KEY"),
    ],
)
async def test_http_errors(cassette, name: str, status: int, retryable: bool, fragment: str) -> None:
    model, _ = cassette(name)

    with pytest.raises(ModelError) as raised:
        await model.request(ask("Where is order 1234?"))

    error = raised.value
    assert (error.status_code, error.retryable) == (status, retryable)
    assert fragment in str(error)
    assert "request id req_011C" in str(error)
    assert API_KEY not in str(error)


async def test_max_tokens_is_length(cassette) -> None:
    model, replay = cassette("anthropic_max_tokens.json")

    response = await model.request(ask("Explain your refund policy in detail.", tools=(), max_output_tokens=16))

    assert response.finish_reason == "length"
    assert replay.body(0)["max_tokens"] == 16


async def test_empty_content_is_a_retryable_error(cassette) -> None:
    model, _ = cassette("anthropic_empty.json")

    with pytest.raises(ModelError, match="empty response") as raised:
        await model.request(ask("Where is order 1234?"))

    assert raised.value.retryable is True


async def test_disabled_requests_never_reach_the_network(monkeypatch) -> None:
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", False)
    sent: list[httpx2.Request] = []
    transport = httpx2.MockTransport(lambda request: sent.append(request) or httpx2.Response(500))
    async with httpx2.AsyncClient(transport=transport) as client:
        model = AnthropicModel("claude-haiku-4-5", api_key=API_KEY, http_client=client)
        with pytest.raises(ModelRequestsDisabledError):
            await model.request(ask("Where is order 1234?"))
    assert sent == []


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(httpx2.ConnectError("connection refused"), "could not connect"), (httpx2.ReadTimeout("slow"), "timed out")],
)
async def test_transport_failures_are_retryable(failure: Exception, expected: str) -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise failure

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(fail)) as client:
        model = AnthropicModel("claude-haiku-4-5", api_key=API_KEY, http_client=client, max_retries=0, timeout_s=5)
        with pytest.raises(ModelError, match=expected) as raised:
            await model.request(ask("Where is order 1234?"))
    assert raised.value.retryable is True
    assert raised.value.status_code is None
    assert "https://api.anthropic.com" in str(raised.value)


@pytest.mark.parametrize("key", [API_KEY, "gw-live-0123456789abcdef"], ids=["anthropic-key", "gateway-key"])
@pytest.mark.parametrize("as_json", [True, False], ids=["json-body", "text-body"])
async def test_a_key_echoed_in_a_provider_error_never_shows(key: str, as_json: bool) -> None:
    echo = f"invalid x-api-key: {key}."

    def reject(request: httpx2.Request) -> httpx2.Response:
        if as_json:
            error = {"type": "authentication_error", "message": echo}
            return httpx2.Response(401, json={"type": "error", "error": error})
        return httpx2.Response(401, text=echo)  # a gateway in front of the API, answering in plain text

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(reject)) as client:
        model = AnthropicModel("claude-haiku-4-5", api_key=key, http_client=client, max_retries=0)
        with pytest.raises(ModelError) as raised:
            await model.request(ask("Where is order 1234?"))

    error = raised.value
    assert key not in "".join(traceback.format_exception(error))
    if as_json:  # the provider's message is shown, with the key taken out
        assert "invalid x-api-key: [redacted]." in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_missing_key_is_a_clear_error_unless_a_base_url_is_set(monkeypatch) -> None:
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicModel("claude-haiku-4-5")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://gateway.internal:8080")
    assert AnthropicModel("claude-haiku-4-5").name == "anthropic:claude-haiku-4-5"


def test_consecutive_same_role_messages_are_merged() -> None:
    call = ToolCall("toolu_1", "get_order", '{"order_id": "1"}')
    request = ask(
        "first",
        UserMessage("second"),
        AssistantMessage(tool_calls=(call,)),
        ToolResultMessage("toolu_1", "get_order", "ok"),
        UserMessage("and then?"),
    )

    messages = message_params(request)["messages"]

    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[0]["content"]] == ["text", "text"]
    assert [b["type"] for b in messages[2]["content"]] == ["tool_result", "text"]


def test_invalid_stored_arguments_are_replayed_as_an_empty_input() -> None:
    bad = ToolCall("toolu_1", "get_order", '{"order_id": 12')
    request = ask("x", AssistantMessage("Checking.", (bad,)), ToolResultMessage("toolu_1", "get_order", "bad JSON"))

    assistant = message_params(request)["messages"][1]

    assert assistant["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_order", "input": {}},
    ]


def test_input_tokens_are_a_conservative_estimate() -> None:
    model = AnthropicModel("claude-haiku-4-5", api_key=API_KEY)
    plain = ModelRequest(SYSTEM, (UserMessage("Where is order 1234?"),))
    with_tools = ask("Where is order 1234?")

    assert model.count_input_tokens(plain) == count_request_tokens(plain, None)
    assert model.count_input_tokens(plain) > count_request_tokens(plain, "cl100k_base")
    # With tools Anthropic adds its tool-use system prompt. The cassette's turn bills 412 input tokens (a
    # hand-written figure, so a plausibility check rather than a measurement).
    billed = load_cassette("anthropic_tool_use.json")[0]["response"]["body"]["usage"]["input_tokens"]
    assert model.count_input_tokens(with_tools) == count_request_tokens(with_tools, None) + 346
    assert model.count_input_tokens(with_tools) >= billed
    assert tool_use_prompt_tokens("claude-3-opus-20240229") == 530


async def test_a_refusal_without_text_is_returned_with_its_usage() -> None:
    body = {
        "id": "msg_r",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": "refusal",
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 0},
    }
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=body))
    async with httpx2.AsyncClient(transport=transport) as client:
        model = AnthropicModel("claude-haiku-4-5", api_key=API_KEY, http_client=client, max_retries=0)
        response = await model.request(ask("Where is order 1234?"))
    assert response.finish_reason == "content_filter" and response.text is None
    assert response.usage == RequestUsage(30, 0)


async def test_an_empty_object_with_a_success_status_is_a_retryable_model_error() -> None:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json={}))
    async with httpx2.AsyncClient(transport=transport) as client:
        model = AnthropicModel("claude-haiku-4-5", api_key=API_KEY, http_client=client, max_retries=0)
        with pytest.raises(ModelError, match="malformed response") as raised:
            await model.request(ask("Where is order 1234?"))
    assert raised.value.retryable is True
