"""OpenAIModel and AnthropicModel against a real local server that fails on cue (tests/_fault_server.py).

Each provider failure a deployed agent meets (rate limits, 5xx, overload, rejected keys, hangs, dropped
connections, proxy pages, empty or cut-off answers) is served over a real socket, through the official SDK,
and must reach Keel as a `ModelError` whose ``retryable``, ``status_code`` and ``retry_after_s`` tell the
pipeline's recovery what to do, or as a response it can account for.

Models are built with ``max_retries=0``, so each attempt is one request the server records: retries the SDK
makes itself are invisible to Keel's journal (the last test shows them), which is why Keel retries on its own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from _fault_server import (
    ANTHROPIC_PATH,
    HTML_PROXY_PAGE,
    OPENAI_PATH,
    Drop,
    FaultServer,
    Hang,
    HTTPError,
    Item,
    Raw,
    Reply,
    ToolUse,
    Truncated,
    openai_completion,
)
from _replay import GET_ORDER, SYSTEM
from keel.errors import ModelError
from keel.models import ModelRequest, UserMessage
from keel.models._sdk_model import SDKModel
from keel.models.anthropic import AnthropicModel
from keel.models.openai import OpenAIModel

PROVIDERS = ("openai", "anthropic")
MODEL_NAMES = {"openai": "gpt-fault", "anthropic": "claude-fault"}
PATHS = {"openai": OPENAI_PATH, "anthropic": ANTHROPIC_PATH}
KEY_ENVS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
API_KEY = "fault-server-test-key"
QUESTION = "Where is order 1234?"
ASK = ModelRequest(SYSTEM, (UserMessage(QUESTION),), tools=(GET_ORDER,))

Connect = Callable[..., SDKModel[Any]]


pytestmark = pytest.mark.usefixtures("local_provider_requests")


@pytest.fixture
def server(fault_server: FaultServer) -> FaultServer:
    return fault_server


@pytest.fixture
async def connect(server: FaultServer) -> AsyncIterator[Connect]:
    """`connect(provider, max_retries=0, timeout_s=10)` -> a model of that provider, pointed at the server.

    The models are closed before the server stops (this fixture depends on `server`), so no connection is left.
    """
    models: list[SDKModel[Any]] = []

    def build(provider: str, *, max_retries: int = 0, timeout_s: float = 10.0) -> SDKModel[Any]:
        options: dict[str, Any] = {"api_key": API_KEY, "max_retries": max_retries, "timeout_s": timeout_s}
        model: SDKModel[Any]
        if provider == "openai":  # the OpenAI SDK's base URL ends in /v1
            model = OpenAIModel(MODEL_NAMES[provider], base_url=server.openai_base_url, **options)
        else:  # the Anthropic SDK appends /v1/messages itself
            model = AnthropicModel(MODEL_NAMES[provider], base_url=server.anthropic_base_url, **options)
        models.append(model)
        return model

    yield build
    for model in models:
        await model.aclose()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def fails_once(model: SDKModel[Any], server: FaultServer, provider: str, item: Item) -> ModelError:
    """Serve `item` to one request of `model`; return the `ModelError` raised after exactly one attempt."""
    server.script(item)
    with pytest.raises(ModelError) as raised:
        await model.request(ASK)
    assert [r.path for r in server.requests] == [PATHS[provider]]
    return raised.value


# ---- answers ----


async def test_a_text_reply_arrives_in_each_providers_wire_format(provider, server, connect) -> None:
    server.script(Reply("Order 1234 has shipped.", input_tokens=30, output_tokens=8))

    response = await connect(provider).request(ASK)

    assert response.text == "Order 1234 has shipped."
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (30, 8)
    assert response.model_name == MODEL_NAMES[provider]  # the server echoes the requested model
    assert response.provider_id
    (seen,) = server.requests
    assert seen.method == "POST" and seen.path == PATHS[provider]
    assert seen.body["model"] == MODEL_NAMES[provider]
    assert QUESTION in json.dumps(seen.body["messages"])


async def test_a_tool_call_comes_back_as_json_arguments(provider, server, connect) -> None:
    server.script(Reply(tool_calls=(ToolUse("get_order", {"order_id": "1234"}, id="call_or_toolu_1"),)))

    response = await connect(provider).request(ASK)

    (call,) = response.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_or_toolu_1", "get_order", {"order_id": "1234"})
    assert response.finish_reason == "tool_calls"


async def test_invalid_json_tool_arguments_come_back_verbatim(server, connect) -> None:
    # Only OpenAI carries arguments as text; the pipeline (not the provider) rejects them and tells the model.
    truncated, prose = '{"order_id": "12', "order 1234 please"
    server.script(Reply(tool_calls=(ToolUse("get_order", truncated), ToolUse("get_order", prose))))

    response = await connect("openai").request(ASK)

    assert [c.arguments for c in response.tool_calls] == [truncated, prose]
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("text", ["Refunds are available within", None], ids=["partial-text", "nothing"])
async def test_a_cut_off_reply_comes_back_with_finish_reason_length(provider, server, connect, text) -> None:
    # Even a reply cut off before any text is returned, not raised, so the tokens it cost are accounted.
    server.script(Reply(text, finish="length", output_tokens=1024))

    response = await connect(provider).request(ASK)

    assert response.finish_reason == "length"
    assert response.text == text
    assert response.tool_calls == ()
    assert response.usage.output_tokens == 1024
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("provider", "text"),
    [("openai", None), ("openai", ""), ("anthropic", None)],
    ids=["openai-null", "openai-empty", "anthropic"],
)
async def test_an_empty_reply_is_a_retryable_error(server, connect, provider, text) -> None:
    # Neither text nor tool calls, and not cut off: a new sample may well answer, so the pipeline may retry.
    error = await fails_once(connect(provider), server, provider, Reply(text))

    assert error.retryable is True
    assert error.status_code is None
    assert "empty response (neither text nor tool calls)" in str(error)


async def test_an_openai_completion_without_choices_is_a_retryable_error(server, connect) -> None:
    no_choices = {**openai_completion(Reply("unused")), "choices": []}

    error = await fails_once(connect("openai"), server, "openai", Raw(no_choices))

    assert error.retryable is True
    assert "empty response (no choices)" in str(error)


# ---- HTTP errors ----


async def test_a_rate_limit_is_retryable_after_the_providers_delay(provider, server, connect) -> None:
    error = await fails_once(connect(provider), server, provider, HTTPError(429, retry_after=2))

    assert error.retryable is True
    assert error.status_code == 429
    assert error.retry_after_s == 2.0
    assert "rate limited (HTTP 429" in str(error)


@pytest.mark.parametrize(
    ("provider", "status"),
    [(p, s) for p in PROVIDERS for s in (500, 502, 503)] + [("anthropic", 529)],
)
async def test_server_errors_and_overload_are_retryable(server, connect, provider, status) -> None:
    error = await fails_once(connect(provider), server, provider, HTTPError(status))

    assert error.retryable is True
    assert error.status_code == status
    assert error.retry_after_s is None


@pytest.mark.parametrize("status", [400, 401])
async def test_rejected_requests_are_not_retryable(provider, server, connect, status) -> None:
    error = await fails_once(connect(provider), server, provider, HTTPError(status, "nope"))

    assert error.retryable is False
    assert error.status_code == status
    assert str(error).endswith(": nope")
    if status == 401:
        assert f"check {KEY_ENVS[provider]}" in str(error)


# ---- no HTTP answer, or not the API's ----


async def test_a_hang_past_the_timeout_is_a_retryable_timeout(provider, server, connect) -> None:
    model = connect(provider, timeout_s=0.5)
    started = time.monotonic()

    error = await fails_once(model, server, provider, Hang(30))

    assert time.monotonic() - started < 10  # the client gave up; it did not wait for the server
    assert error.retryable is True
    assert error.status_code is None
    assert "request timed out after 0.5s" in str(error)


async def test_a_dropped_connection_is_retryable(provider, server, connect) -> None:
    error = await fails_once(connect(provider), server, provider, Drop())

    assert error.retryable is True
    assert error.status_code is None


MALFORMED = {
    "html-proxy-page": HTML_PROXY_PAGE,
    "truncated-json": Truncated(),
    "json-of-another-shape": Raw({"status": "error", "detail": "upstream timed out"}),
    "json-string": Raw('"upstream timed out"'),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_200_that_is_not_the_apis_json_is_a_retryable_malformed_response(
    provider, server, connect, body
) -> None:
    error = await fails_once(connect(provider), server, provider, body)

    assert error.retryable is True
    assert error.status_code is None
    assert "malformed response from the provider" in str(error)


# ---- retries inside the SDK ----


async def test_sdk_retries_are_invisible_to_keel(provider, server, connect) -> None:
    # With max_retries=2 the SDK retries a 503 on its own: the server sees three requests, Keel one success, so
    # nothing of the two failures could be journaled. Keel therefore builds its models with max_retries=0.
    # (retry-after-ms keeps the SDK's backoff short; both SDKs obey it.)
    unavailable = HTTPError(503, headers={"retry-after-ms": "10"})
    server.script(unavailable, unavailable, Reply("Order 1234 has shipped."))

    response = await connect(provider, max_retries=2).request(ASK)

    assert response.text == "Order 1234 has shipped."
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1", "2"]


# ---- the server itself ----


async def test_a_request_beyond_the_script_gets_a_500_saying_so(provider, server, connect) -> None:
    with pytest.raises(ModelError) as raised:
        await connect(provider).request(ASK)

    assert raised.value.status_code == 500
    assert "the script ran out" in str(raised.value)


def test_close_is_prompt_and_leaves_no_thread_while_a_request_hangs() -> None:
    server = FaultServer(Hang(60)).start()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        client.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.requests) == 1

        started = time.monotonic()
        server.close()

        assert time.monotonic() - started < 2
        assert client.recv(1024) == b""  # closed without an answer
    finally:
        client.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("fault-server")] == []
