"""OpenAIModel against Chat Completions exchanges in the API's exact wire format (tests/cassettes/openai_*.json).

The cassettes are written by hand, not recorded from the live API; test_models_cassettes.py validates them
against the `openai` SDK's own types.
"""

from __future__ import annotations

import asyncio
import json
import traceback

import httpx2
import openai
import pytest

import keel.models
from _replay import GET_ORDER, ORDER_1234, SYSTEM, Replay, load_cassette
from keel.errors import ConfigError, MissingCredentialsError, ModelError, ModelRequestsDisabledError
from keel.models import (
    AssistantMessage,
    ModelRequest,
    RequestUsage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from keel.models.openai import OpenAIModel

API_KEY = "sk-test-keel-0123456789abcdefwxyz"
SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "carrier": {"type": "string"}},
    "required": ["order_id", "carrier"],
}


def ask(text: str, *history, tools=(GET_ORDER,), **kwargs) -> ModelRequest:
    return ModelRequest(SYSTEM, (UserMessage(text), *history), tools=tools, **kwargs)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", True)


@pytest.fixture
async def cassette():
    """`cassette(name, **model_kwargs)` -> (model, replay); every replay is verified at teardown."""
    opened: list[tuple[Replay, httpx2.AsyncClient]] = []

    def use(name: str, model_name: str = "gpt-4o-mini", **kwargs) -> tuple[OpenAIModel, Replay]:
        replay = Replay(name)
        client = replay.client()
        opened.append((replay, client))
        kwargs.setdefault("api_key", API_KEY)
        return OpenAIModel(model_name, http_client=client, max_retries=0, **kwargs), replay

    yield use
    for replay, client in opened:
        await client.aclose()
        replay.verify()


async def test_tool_call_then_final_answer(cassette) -> None:
    model, replay = cassette("openai_tool_call.json")

    first = await model.request(ask("Where is order 1234?"))

    assert first.text is None
    assert first.tool_calls == (ToolCall("call_Qx7Lp2Vb9GkM4sT1nR8aZc3d", "get_order", '{"order_id":"1234"}'),)
    assert first.finish_reason == "tool_calls"
    assert first.usage == RequestUsage(input_tokens=71, output_tokens=17)
    assert first.provider_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert first.model_name == "gpt-4o-mini-2024-07-18"

    (call,) = first.tool_calls
    second = await model.request(
        ask(
            "Where is order 1234?",
            AssistantMessage(tool_calls=first.tool_calls),
            ToolResultMessage(call_id=call.id, name=call.name, content=ORDER_1234),
        )
    )

    assert second.text == "Order 1234 has shipped with UPS and should arrive on July 22, 2024."
    assert second.tool_calls == ()
    assert second.finish_reason == "stop"
    assert second.usage == RequestUsage(input_tokens=121, output_tokens=20)
    assert replay.body(0)["tool_choice"] == "auto"  # llama-cpp-python ignores tools sent without it
    sent = replay.body(1)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}
    assert sent["messages"][2]["content"] == ""  # not null: llama-cpp-python rejects a null content
    assert sent["messages"][2]["tool_calls"][0]["function"] == {
        "name": "get_order",
        "arguments": '{"order_id":"1234"}',
    }
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": call.id, "content": ORDER_1234}
    assert sent["tools"][0]["function"]["name"] == "get_order"


async def test_parallel_tool_calls_and_an_error_result(cassette) -> None:
    model, replay = cassette("openai_parallel_tool_calls.json")

    first = await model.request(ask("Where are orders 1234 and 5678?"))

    assert [(c.name, json.loads(c.arguments)) for c in first.tool_calls] == [
        ("get_order", {"order_id": "1234"}),
        ("get_order", {"order_id": "5678"}),
    ]
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
    tool_messages = [m for m in replay.body(1)["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [one.id, two.id]
    assert tool_messages[1]["content"] == "Error: order 5678 not found"


async def test_typed_output_uses_response_format(cassette) -> None:
    model, replay = cassette("openai_typed_output.json")
    request = ModelRequest(
        "Extract the order details.",
        (UserMessage("Order 1234 shipped with UPS, arriving July 22."),),
        output_schema=SCHEMA,
        max_output_tokens=256,
    )

    response = await model.request(request)

    assert json.loads(response.text or "") == {"order_id": "1234", "carrier": "UPS"}
    assert replay.body(0)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "final_output", "schema": SCHEMA, "strict": False},
    }


async def test_rate_limited_is_retryable(cassette) -> None:
    model, _ = cassette("openai_rate_limited.json")

    with pytest.raises(ModelError) as raised:
        await model.request(ask("Where is order 1234?"))

    error = raised.value
    assert error.retryable is True
    assert error.status_code == 429
    assert "rate limited" in str(error)
    assert "retry after 2s" in str(error)
    assert error.retry_after_s == 2.0
    assert "req_9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a" in str(error)


async def test_exhausted_quota_is_not_retryable(cassette) -> None:
    model, _ = cassette("openai_insufficient_quota.json")

    with pytest.raises(ModelError) as raised:
        await model.request(ask("Where is order 1234?"))

    assert raised.value.status_code == 429
    assert raised.value.retryable is False
    assert "insufficient_quota" in str(raised.value)


async def test_server_error_is_retryable(cassette) -> None:
    model, _ = cassette("openai_server_error.json")

    with pytest.raises(ModelError) as raised:
        await model.request(ask("Where is order 1234?"))

    assert raised.value.retryable is True
    assert raised.value.status_code == 500


async def test_unauthorized_is_not_retryable_and_never_shows_the_key(cassette) -> None:
    model, _ = cassette("openai_unauthorized.json")

    with pytest.raises(ModelError) as raised:
        await model.request(ask("Where is order 1234?"))

    error = raised.value
    message = str(error)
    assert error.retryable is False
    assert error.status_code == 401
    assert "authentication failed" in message and "OPENAI_API_KEY" in message
    assert API_KEY not in message
    assert "sk-" not in message  # not even the masked form the API echoes back
    assert error.__cause__ is None and error.__suppress_context__


async def test_empty_responses_raise_retryable_errors(cassette) -> None:
    model, _ = cassette("openai_empty.json")

    for _ in range(2):  # no choices; then a choice with neither text nor tool calls
        with pytest.raises(ModelError, match="empty response") as raised:
            await model.request(ask("Where is order 1234?"))
        assert raised.value.retryable is True


async def test_length_finish_reason(cassette) -> None:
    model, replay = cassette("openai_length.json")

    response = await model.request(ask("Explain your refund policy in detail.", tools=(), max_output_tokens=16))

    assert response.finish_reason == "length"
    assert response.text is not None and response.text.startswith("Refunds are available")
    assert replay.body(0)["max_completion_tokens"] == 16


async def test_invalid_json_arguments_are_passed_through_raw(cassette) -> None:
    model, _ = cassette("openai_invalid_arguments.json")

    response = await model.request(ask("Where is order 1234?"))

    assert response.tool_calls[0].arguments == '{"order_id": 1234'


async def test_local_server_gets_max_tokens_and_a_placeholder_key(cassette, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    model, replay = cassette("openai_local_server.json", model_name="llama3.1:8b", api_key=None)

    response = await model.request(ask("Where is order 1234?"))

    assert model.max_tokens_param == "max_tokens"
    assert replay.sent[0].headers["authorization"] == "Bearer keel-no-key"
    assert response.text is None  # Ollama sends "" alongside tool calls
    assert response.tool_calls == (ToolCall("call_r5kq2m8w", "get_order", '{"order_id":"1234"}'),)
    assert response.usage == RequestUsage(187, 22)
    assert model.price is None  # unknown model: cost recorded as 0


async def test_disabled_requests_never_reach_the_network(monkeypatch) -> None:
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", False)
    sent: list[httpx2.Request] = []
    transport = httpx2.MockTransport(lambda request: sent.append(request) or httpx2.Response(500))
    async with httpx2.AsyncClient(transport=transport) as client:
        model = OpenAIModel("gpt-4o-mini", api_key=API_KEY, http_client=client)
        with pytest.raises(ModelRequestsDisabledError, match="ALLOW_MODEL_REQUESTS"):
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
        model = OpenAIModel("gpt-4o-mini", api_key=API_KEY, http_client=client, max_retries=0, timeout_s=5)
        with pytest.raises(ModelError, match=expected) as raised:
            await model.request(ask("Where is order 1234?"))
    assert raised.value.retryable is True
    assert raised.value.status_code is None


@pytest.mark.parametrize(
    "response",
    [
        httpx2.Response(200, text="<html>502 Bad Gateway</html>", headers={"content-type": "text/html"}),
        httpx2.Response(200, text='{"id": "chatcmpl-1", "choi', headers={"content-type": "application/json"}),
    ],
    ids=["html-page", "broken-json"],
)
async def test_a_success_status_with_an_unusable_body_is_a_retryable_model_error(response: httpx2.Response) -> None:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(lambda request: response)) as client:
        model = OpenAIModel("gpt-4o-mini", api_key=API_KEY, http_client=client, max_retries=0)
        with pytest.raises(ModelError, match="malformed response") as raised:
            await model.request(ask("Where is order 1234?"))
    assert raised.value.retryable is True


def test_missing_key_is_a_clear_error_at_construction() -> None:
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY is not set.*OPENAI_BASE_URL"):
        OpenAIModel("gpt-4o-mini")


async def test_temperature_and_seed_are_sent_only_when_set() -> None:
    answer = load_cassette("openai_tool_call.json")[1]["response"]["body"]
    bodies: list[dict] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return httpx2.Response(200, json=answer)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(capture)) as client:
        for settings in ({}, {"temperature": 0.0, "seed": 7}):
            model = OpenAIModel("gpt-4o-mini", api_key=API_KEY, http_client=client, max_retries=0, **settings)
            await model.request(ask("Where is order 1234?"))

    default, tuned = bodies
    assert "temperature" not in default and "seed" not in default  # the provider's own defaults apply
    assert (tuned["temperature"], tuned["seed"]) == (0.0, 7)


@pytest.mark.parametrize("temperature", [-0.1, 2.01, float("nan")])
def test_a_temperature_outside_the_api_range_is_a_config_error(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature must be between 0 and 2"):
        OpenAIModel("gpt-4o-mini", api_key=API_KEY, temperature=temperature)


def test_official_api_gets_max_completion_tokens() -> None:
    assert OpenAIModel("o3-mini", api_key=API_KEY).max_tokens_param == "max_completion_tokens"
    explicit = OpenAIModel("gpt-4o", api_key=API_KEY, base_url="https://api.openai.com/v1")
    assert explicit.max_tokens_param == "max_completion_tokens"
    assert OpenAIModel("qwen", base_url="http://vllm:8000/v1").max_tokens_param == "max_tokens"


def test_each_event_loop_gets_its_own_sdk_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # `run_sync` starts a new loop per call, and the SDK's own connection pool only works on the loop that made
    # it. Observed through the SDK's constructor: Keel's public surface does not expose the client.
    answer = load_cassette("openai_tool_call.json")[1]["response"]["body"]
    built: list[openai.AsyncOpenAI] = []
    sdk_client = openai.AsyncOpenAI

    def build(**kwargs) -> openai.AsyncOpenAI:
        assert kwargs["http_client"] is None  # the pool is the SDK's, so it must not outlive its loop
        transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=answer))
        built.append(sdk_client(**{**kwargs, "http_client": httpx2.AsyncClient(transport=transport)}))
        return built[-1]

    monkeypatch.setattr(openai, "AsyncOpenAI", build)
    model = OpenAIModel("gpt-4o-mini", api_key=API_KEY)

    async def ask_twice() -> None:
        for _ in range(2):
            assert (await model.request(ask("Where is order 1234?"))).finish_reason == "stop"

    asyncio.run(ask_twice())
    assert len(built) == 1
    asyncio.run(ask_twice())
    assert len(built) == 2


@pytest.mark.parametrize("key", [API_KEY, "gw-live-0123456789abcdef"], ids=["openai-key", "gateway-key"])
@pytest.mark.parametrize("as_json", [True, False], ids=["json-body", "text-body"])
async def test_a_key_echoed_in_a_provider_error_never_shows(key: str, as_json: bool) -> None:
    echo = f"Incorrect API key provided: {key}."

    def reject(request: httpx2.Request) -> httpx2.Response:
        if as_json:
            return httpx2.Response(401, json={"error": {"message": echo, "type": "invalid_request_error"}})
        return httpx2.Response(401, text=echo)  # a proxy in front of the API, answering in plain text

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(reject)) as client:
        model = OpenAIModel("gpt-4o-mini", api_key=key, http_client=client, max_retries=0)
        with pytest.raises(ModelError) as raised:
            await model.request(ask("Where is order 1234?"))

    error = raised.value
    assert key not in "".join(traceback.format_exception(error))
    if as_json:  # the provider's message is shown, with the key taken out
        assert "Incorrect API key provided: [redacted]." in str(error)
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize("key", ["sk-abc\u201d123456789", "sk-abc 123456789", "sk-abc123456789\n"])
def test_a_mangled_api_key_is_a_config_error_that_does_not_show_it(key: str) -> None:
    with pytest.raises(ConfigError, match="non-ASCII") as raised:
        OpenAIModel("gpt-4o-mini", api_key=key)
    assert key.strip() not in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0}]},
        {"error": {"message": "upstream failed"}},
    ],
    ids=["choice-without-message", "error-envelope-with-200"],
)
async def test_a_success_status_with_the_wrong_shape_is_a_retryable_model_error(body: dict) -> None:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=body))
    async with httpx2.AsyncClient(transport=transport) as client:
        model = OpenAIModel("gpt-4o-mini", api_key=API_KEY, http_client=client, max_retries=0)
        with pytest.raises(ModelError, match="malformed response|empty response") as raised:
            await model.request(ask("Where is order 1234?"))
    assert raised.value.retryable is True


async def test_a_refusal_without_text_is_returned_with_its_usage() -> None:
    body = {
        "id": "chatcmpl-r",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "content_filter",
                "message": {"role": "assistant", "content": None, "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 0, "total_tokens": 40},
    }
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=body))
    async with httpx2.AsyncClient(transport=transport) as client:
        model = OpenAIModel("gpt-4o-mini", api_key=API_KEY, http_client=client, max_retries=0)
        response = await model.request(ask("Where is order 1234?"))
    assert response.finish_reason == "content_filter" and response.text is None
    assert response.usage == RequestUsage(40, 0)
