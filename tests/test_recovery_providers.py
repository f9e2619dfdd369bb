"""Provider failures in agent runs, over the real OpenAI and Anthropic wire formats (tests/_fault_server.py).

Each failure a deployed agent meets is served over a real socket through the official SDK (with its own retries
off): Keel retries within its policy (honouring ``retry-after``), journals and accounts every attempt, then hands
over to a fallback model, then ends PARTIAL or FAILED — never an exception, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from _fault_server import (
    HTML_PROXY_PAGE,
    Drop,
    FaultServer,
    Hang,
    HTTPError,
    Item,
    Reply,
    ToolUse,
    Truncated,
)
from keel import Agent, EventKind, RetryPolicy, RunStatus, tool
from keel.models import Model
from keel.models.anthropic import AnthropicModel
from keel.models.openai import OpenAIModel
from keel.store import MemoryStore

FAST = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05, jitter=0.01)
ANSWER = Reply("Order 1234 has shipped.", input_tokens=40, output_tokens=9)


@tool(trusted=True)
def get_order(order_id: str) -> dict[str, str]:
    """Look up an order by id."""
    return {"order_id": order_id, "status": "shipped"}


pytestmark = pytest.mark.usefixtures("local_provider_requests")


@pytest.fixture
def server(fault_server: FaultServer) -> FaultServer:
    return fault_server


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def connect(server: FaultServer) -> AsyncIterator[Callable[..., Model]]:
    made: list[Model] = []

    def build(provider: str, *, timeout_s: float = 10.0) -> Model:
        options: dict[str, Any] = {"api_key": "test-key", "timeout_s": timeout_s}
        model: Model = (
            OpenAIModel("gpt-fault", base_url=server.openai_base_url, **options)
            if provider == "openai"
            else AnthropicModel("claude-fault", base_url=server.anthropic_base_url, **options)
        )
        made.append(model)
        return model

    yield build
    for model in made:
        await model.aclose()


def desk(model: Model, **kwargs: Any) -> Agent:
    kwargs.setdefault("retry", FAST)
    return Agent("desk", model, tools=[get_order], store=MemoryStore(), guards=[], **kwargs)


def kinds(result, kind: EventKind) -> list[dict]:
    return [e.payload for e in result.events if e.kind is kind]


async def test_a_rate_limit_is_waited_out_as_the_provider_asks(provider, server, connect) -> None:
    server.script(HTTPError(429, retry_after=0.3), ANSWER)
    started = time.monotonic()
    patient = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=1)
    result = await desk(connect(provider), retry=patient).run("Where is order 1234?")

    assert result.status is RunStatus.COMPLETED and result.output == "Order 1234 has shipped."
    assert time.monotonic() - started >= 0.3
    [wait] = kinds(result, EventKind.RETRY_SCHEDULED)
    assert wait["delay_s"] >= 0.3 and "429" in wait["error"]
    failed, answered = kinds(result, EventKind.MODEL_CALLED)
    assert failed["retryable"] and failed["retry_after_s"] == 0.3 and "error" not in answered
    assert len(server.requests) == 2  # one request per attempt: the SDK's own retries are off


@pytest.mark.parametrize(
    "failure",
    [
        HTTPError(500),
        HTTPError(503),
        Drop(),
        Hang(5),
        Truncated(ANSWER),
        HTML_PROXY_PAGE,
        Reply(),  # an empty reply: neither text nor tool calls
    ],
    ids=["500", "503", "dropped", "timeout", "truncated-json", "proxy-page", "empty"],
)
async def test_each_transient_failure_is_retried_then_the_run_completes(
    provider, server, connect, failure: Item
) -> None:
    server.script(failure, ANSWER)
    result = await desk(connect(provider, timeout_s=0.5)).run("Where is order 1234?")

    assert result.status is RunStatus.COMPLETED, result.report
    assert [c["attempt"] for c in kinds(result, EventKind.MODEL_CALLED)] == [1, 2]
    assert len(kinds(result, EventKind.RETRY_SCHEDULED)) == 1 and len(server.requests) == 2


async def test_a_tool_call_round_trip_survives_a_failure_on_each_turn(provider, server, connect) -> None:
    server.script(
        HTTPError(502),
        Reply(tool_calls=(ToolUse("get_order", {"order_id": "1234"}),), finish="tool_calls"),
        HTTPError(503),
        ANSWER,
    )
    result = await desk(connect(provider)).run("Where is order 1234?")

    assert result.status is RunStatus.COMPLETED
    [called] = kinds(result, EventKind.TOOL_CALLED)
    assert called["outcome"] == "ok" and len(server.requests) == 4


async def test_a_provider_that_stays_down_hands_over_to_the_fallback_model(server, connect) -> None:
    server.script(HTTPError(503), HTTPError(503), HTTPError(503), ANSWER)
    primary, backup = connect("openai"), connect("anthropic")
    result = await desk(primary, fallback_models=[backup]).run("Where is order 1234?")

    assert result.status is RunStatus.COMPLETED
    [switch] = kinds(result, EventKind.FALLBACK_USED)
    assert (switch["from"], switch["to"]) == ("openai:gpt-fault", "anthropic:claude-fault")
    assert [r.endpoint for r in server.requests] == ["openai"] * 3 + ["anthropic"]


async def test_a_rejected_key_is_not_retried_and_fails_the_run_with_the_reason(provider, server, connect) -> None:
    server.script(HTTPError(401))
    result = await desk(connect(provider)).run("Where is order 1234?")

    assert result.status is RunStatus.FAILED and "401" in result.report.reason
    assert len(server.requests) == 1 and kinds(result, EventKind.RETRY_SCHEDULED) == []


async def test_a_provider_down_for_good_ends_the_run_after_the_bounded_attempts(provider, server, connect) -> None:
    server.script(*[HTTPError(503)] * 10)
    result = await desk(connect(provider)).run("Where is order 1234?")

    assert result.status is RunStatus.FAILED and "503" in result.report.reason
    assert len(server.requests) == FAST.max_attempts
    assert result.usage.requests == FAST.max_attempts
