"""Error recovery in runs (E1): retries with backoff, alternatives, degradation, escalation, fallback models."""

import asyncio
import time

import pytest

from keel import Agent, Budget, EventKind, ReviewQueue, RunStatus, ToolContext, tool
from keel.errors import ConfigError, ModelError, ToolDefinitionError
from keel.models import ModelRequest, ModelResponse
from keel.recovery import RetryPolicy
from keel.store import MemoryStore
from keel.testing import FunctionModel, ScriptedModel, call, fail, reply

FAST = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05, jitter=0.01)


def events(result, kind: EventKind) -> list[dict]:
    return [e.payload for e in result.events if e.kind is kind]


def agent(model, tools, **kwargs) -> Agent:
    kwargs.setdefault("retry", FAST)
    return Agent("desk", model, tools=tools, store=MemoryStore(), guards=[], **kwargs)


class Flaky:
    """A lookup that fails `failures` times with `error`, then answers."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.error, self.calls = failures, error or ConnectionError("upstream reset"), 0

    def __call__(self, order_id: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return f"order {order_id} shipped"


def lookup_tool(flaky: Flaky, name: str = "get_order", **options) -> object:
    def get_order(order_id: str) -> str:
        """Look an order up."""
        return flaky(order_id)

    return tool(name=name, trusted=True, **options)(get_order)


async def test_a_transient_failure_is_retried_with_backoff_and_every_attempt_is_journaled() -> None:
    flaky = Flaky(2)
    policy = RetryPolicy(max_attempts=3, initial_delay_s=0.05, max_delay_s=1, multiplier=2, jitter=0.01)
    model = ScriptedModel([call("get_order", order_id="7"), reply("Shipped.")])
    result = await agent(model, [lookup_tool(flaky)], retry=policy).run("where is 7?")

    assert result.status is RunStatus.COMPLETED and flaky.calls == 3
    attempts = events(result, EventKind.TOOL_CALLED)
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "error"), (2, "error"), (3, "ok")]
    waits = events(result, EventKind.RETRY_SCHEDULED)
    assert [w["attempt"] for w in waits] == [2, 3]
    assert 0.05 <= waits[0]["delay_s"] <= 0.061 and 0.1 <= waits[1]["delay_s"] <= 0.111  # backoff plus jitter
    assert "upstream reset" in waits[0]["error"]
    [seen] = [m for m in model.requests[1].messages if m.role == "tool"]
    assert seen.content == "order 7 shipped" and not seen.is_error  # the model sees one answer, the good one


async def test_an_error_the_model_can_correct_is_not_retried() -> None:
    flaky = Flaky(1, ValueError("no order 'x7'"))
    model = ScriptedModel([call("get_order", order_id="x7"), reply("No such order.")])
    result = await agent(model, [lookup_tool(flaky)]).run("where is x7?")

    assert flaky.calls == 1 and events(result, EventKind.RETRY_SCHEDULED) == []
    assert "no order 'x7'" in model.requests[1].messages[-1].content


async def test_retries_stop_at_the_policys_bound_then_the_alternative_runs_with_the_same_arguments() -> None:
    primary, backup = Flaky(99), Flaky(0)
    tools = [lookup_tool(primary, alternatives=["by_ticket"]), lookup_tool(backup, name="by_ticket")]
    model = ScriptedModel([call("get_order", order_id="7"), reply("Shipped.")])
    result = await agent(model, tools).run("where is 7?")

    assert result.status is RunStatus.COMPLETED
    assert (primary.calls, backup.calls) == (3, 1)
    [switch] = events(result, EventKind.FALLBACK_USED)
    assert (switch["from"], switch["to"]) == ("get_order", "by_ticket") and "upstream reset" in switch["reason"]
    assert model.requests[1].messages[-1].content == "order 7 shipped"
    assert model.requests[1].messages[-1].name == "get_order"  # the answer is to the call the model made


async def test_a_tool_that_stays_down_is_degraded_and_never_called_again_in_the_run() -> None:
    down = Flaky(99)
    model = ScriptedModel(
        [call("get_order", order_id="7"), call("get_order", order_id="8"), reply("Lookups are down, sorry.")]
    )
    result = await agent(model, [lookup_tool(down)]).run("where are 7 and 8?")

    assert result.status is RunStatus.COMPLETED and down.calls == 3  # the second call never reached the tool
    [degraded] = events(result, EventKind.FALLBACK_USED)
    assert degraded["degraded"] and degraded["to"] is None
    told = model.requests[1].messages[-1]
    assert told.is_error and "unavailable for the rest of this run" in told.content
    skipped = events(result, EventKind.TOOL_CALLED)[-1]
    assert (skipped["outcome"], skipped["arguments"]) == ("unavailable", {"order_id": "8"})
    assert any("get_order" in line for line in result.report.not_done)


async def test_a_required_tool_that_stays_down_goes_to_a_person_and_an_approval_retries_it_once() -> None:
    down = Flaky(3)  # down for the live attempts, back when the person approves a retry
    model = ScriptedModel([call("get_order", order_id="7"), reply("Shipped.")])
    desk = agent(model, [lookup_tool(down, required=True)])
    paused = await desk.run("where is 7?")

    assert paused.status is RunStatus.ESCALATED and down.calls == 3
    queue = ReviewQueue(desk.store)
    [item] = await queue.pending(run_id=paused.run_id)
    assert item.action == "get_order" and item.arguments == {"order_id": "7"}
    assert "required tool 'get_order' failed" in item.reason
    await queue.approve(item.id, by="ops", note="upstream is back")
    resumed = await desk.resume(paused.run_id)

    assert resumed.status is RunStatus.COMPLETED and down.calls == 4
    tool_messages = [m for m in model.requests[-1].messages if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["order 7 shipped"]  # one answer to the call, the one that worked


async def test_a_denied_retry_of_a_required_tool_is_reported_to_the_model() -> None:
    model = ScriptedModel([call("get_order", order_id="7"), reply("I could not look it up.")])
    desk = agent(model, [lookup_tool(Flaky(99), required=True)])
    paused = await desk.run("where is 7?")
    [item] = await ReviewQueue(desk.store).pending(run_id=paused.run_id)
    await ReviewQueue(desk.store).deny(item.id, by="ops")

    resumed = await desk.resume(paused.run_id)
    assert resumed.status is RunStatus.COMPLETED
    assert "denied" in model.requests[-1].messages[-1].content


async def test_a_side_effect_is_tried_once_unless_its_author_declares_a_retry_and_repeats_keep_their_key() -> None:
    keys: list[str] = []

    def charge(ctx: ToolContext, amount: float) -> str:
        """Charge a card."""
        keys.append(ctx.idempotency_key)
        if len(keys) < 3:
            raise ConnectionError("gateway reset")
        return "charged"

    once = tool(name="charge", side_effects=True, severity="low", trusted=True)(charge)
    result = await agent(ScriptedModel([call("charge", amount=5), reply("?")]), [once]).run("x")
    assert len(keys) == 1 and events(result, EventKind.FALLBACK_USED) == []  # the model reads the error

    keys.clear()
    retried = tool(name="charge", side_effects=True, severity="low", trusted=True, retry=FAST)(charge)
    result = await agent(ScriptedModel([call("charge", amount=5), reply("Charged.")]), [retried]).run("x")
    assert result.status is RunStatus.COMPLETED and len(keys) == 3 and len(set(keys)) == 1


async def test_retries_never_wait_past_the_runs_wall_time() -> None:
    slow = RetryPolicy(max_attempts=5, initial_delay_s=5, max_delay_s=5, jitter=0)
    model = ScriptedModel([call("get_order", order_id="7"), reply("down")])
    started = time.monotonic()
    result = await agent(model, [lookup_tool(Flaky(99))], retry=slow, budget=Budget(timeout_s=1)).run("x")

    assert time.monotonic() - started < 1.5
    assert events(result, EventKind.RETRY_SCHEDULED) == [] and len(events(result, EventKind.TOOL_CALLED)) == 1


async def test_a_paid_tool_is_not_retried_by_default() -> None:
    paid = Flaky(99)
    model = ScriptedModel([call("get_order", order_id="7"), reply("down")])
    result = await agent(model, [lookup_tool(paid, cost_usd=0.01)]).run("x")
    assert paid.calls == 1 and result.usage.cost_usd == pytest.approx(0.01)


def test_alternatives_must_be_tools_of_the_agent() -> None:
    with pytest.raises(ConfigError, match="'refund_by_ticket'"):
        agent(ScriptedModel([reply("x")]), [lookup_tool(Flaky(0), alternatives=["refund_by_ticket"])])
    with pytest.raises(ToolDefinitionError, match="its own alternative"):
        lookup_tool(Flaky(0), alternatives=["get_order"])
    with pytest.raises(ToolDefinitionError, match="RetryPolicy"):
        lookup_tool(Flaky(0), retry={"max_attempts": 3})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "between 1 and 100"),
        ({"max_attempts": 1_000_000}, "between 1 and 100"),
        ({"max_attempts": 2.5}, "whole number"),
        ({"initial_delay_s": -1}, "initial_delay_s must be >= 0"),
        ({"max_delay_s": float("inf")}, "finite"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
        ({"initial_delay_s": 10, "max_delay_s": 1}, "must not be below"),
        ({"total_timeout_s": 0}, "total_timeout_s must be > 0"),
        ({"retry_on": ConnectionError}, "tuple of exception types"),
    ],
)
def test_absurd_retry_policies_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(**kwargs)


# --- model calls ------------------------------------------------------------------------------------------------


def failing_then(failures: list[Exception], answer: str = "Done."):
    """A model that raises each of `failures` in turn, then answers."""
    queue = list(failures)

    def respond(request: ModelRequest) -> ModelResponse:
        if queue:
            raise queue.pop(0)
        return reply(answer)

    return respond


async def test_a_rate_limited_model_call_waits_as_long_as_the_provider_asks_then_succeeds() -> None:
    limited = ModelError("429 Too Many Requests", retryable=True, status_code=429, retry_after_s=0.2)
    model = FunctionModel(failing_then([limited]), price=(1.0, 1.0))
    patient = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=1, jitter=0.01)
    started = time.monotonic()
    result = await agent(model, [], retry=patient).run("x")

    assert result.status is RunStatus.COMPLETED and time.monotonic() - started >= 0.2
    [wait] = events(result, EventKind.RETRY_SCHEDULED)
    assert wait["delay_s"] >= 0.2 and wait["attempt"] == 2 and "429" in wait["error"]
    calls = events(result, EventKind.MODEL_CALLED)
    assert [(c["attempt"], "error" in c) for c in calls] == [(1, True), (2, False)]
    assert result.usage.requests == 2  # the failed attempt counts


async def test_a_retry_after_beyond_the_policys_longest_wait_hands_over_instead_of_waiting() -> None:
    limited = ModelError("429 Too Many Requests", retryable=True, status_code=429, retry_after_s=86_400)
    backup = ScriptedModel([reply("Done by the backup.")], name="test:backup")
    started = time.monotonic()
    result = await agent(FunctionModel(failing_then([limited])), [], fallback_models=[backup]).run("x")

    assert time.monotonic() - started < 1 and result.output == "Done by the backup."
    assert events(result, EventKind.RETRY_SCHEDULED) == []  # no day-long wait announced, none taken


async def test_a_model_that_keeps_failing_hands_over_to_the_fallback_for_the_rest_of_the_run() -> None:
    down = ModelError("503 Service Unavailable", retryable=True, status_code=503)
    primary = FunctionModel(failing_then([down] * 10), name="test:primary")
    backup = ScriptedModel([call("get_order", order_id="7"), reply("Shipped.")], name="test:backup")
    result = await agent(primary, [lookup_tool(Flaky(0))], fallback_models=[backup]).run("x")

    assert result.status is RunStatus.COMPLETED and result.output == "Shipped."
    [switch] = events(result, EventKind.FALLBACK_USED)
    assert (switch["from"], switch["to"]) == ("test:primary", "test:backup")
    models = [c["model"] for c in events(result, EventKind.MODEL_CALLED)]
    assert models == ["test:primary"] * 3 + ["test:backup"] * 2
    assert result.usage.by_phase["recovery"].requests >= 2  # retries are recovery's tokens


async def test_a_non_retryable_failure_skips_the_retries_and_a_spent_chain_ends_the_run() -> None:
    refused = ModelError("400 context_length_exceeded", retryable=False, status_code=400)
    result = await agent(
        FunctionModel(failing_then([refused] * 5)), [], fallback_models=[ScriptedModel([fail("down")])]
    ).run("x")

    assert result.status is RunStatus.FAILED and "down" in result.report.reason
    calls = events(result, EventKind.MODEL_CALLED)
    assert len(calls) == 2 and events(result, EventKind.RETRY_SCHEDULED) == []


async def test_a_cancelled_retry_wait_closes_the_run() -> None:
    model = FunctionModel(failing_then([ModelError("503", retryable=True)] * 5))
    slow = RetryPolicy(max_attempts=3, initial_delay_s=30, max_delay_s=30, jitter=0)
    desk = agent(model, [], retry=slow)
    task = asyncio.ensure_future(desk.run("x"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [row] = await desk.store.list_runs()
    assert row.status is RunStatus.FAILED and "cancelled" in (row.reason or "")


async def test_a_model_call_that_timed_out_is_charged_its_worst_case_so_the_budget_still_holds() -> None:
    model = FunctionModel(failing_then([TimeoutError("read timeout")] * 2), price=(100.0, 100.0))
    result = await agent(model, [], budget=Budget(max_cost_usd=0.5), max_output_tokens=100).run("x")

    failed = [e for e in result.events if e.kind is EventKind.MODEL_CALLED and "error" in e.payload]
    assert len(failed) == 2 and all(e.payload["usage_estimated"] and e.cost_usd > 0 for e in failed)
    assert result.usage.cost_usd == pytest.approx(sum(e.cost_usd for e in result.events))
    assert result.usage.cost_usd <= 0.5


async def test_tools_never_use_the_time_kept_for_the_best_effort_answer() -> None:
    @tool(trusted=True, timeout_s=30)
    async def slow_report(topic: str) -> str:
        """Build a report (slowly)."""
        await asyncio.sleep(30)
        return "never"

    script = [call("get_order", order_id="7"), call("slow_report", topic="q3"), reply("Order 7 shipped; no report.")]
    model = ScriptedModel(script)
    result = await agent(model, [lookup_tool(Flaky(0)), slow_report], budget=Budget(timeout_s=1.0)).run("x")

    timed_out = [e for e in result.events if e.kind is EventKind.TOOL_CALLED][-1]
    assert timed_out.payload["outcome"] == "timeout" and timed_out.latency_ms < 950  # the last 10% stayed free
    assert result.status is RunStatus.PARTIAL and result.output == "Order 7 shipped; no report."


async def test_a_degraded_tool_and_its_failed_alternatives_are_no_longer_offered_to_the_model() -> None:
    tools = [lookup_tool(Flaky(99), alternatives=["by_ticket"]), lookup_tool(Flaky(99), name="by_ticket")]
    model = ScriptedModel([call("get_order", order_id="7"), reply("Lookups are down.")])
    result = await agent(model, tools).run("x")

    assert result.status is RunStatus.COMPLETED
    assert [t.name for t in model.requests[0].tools] == ["get_order", "by_ticket"]
    assert model.requests[1].tools == ()
