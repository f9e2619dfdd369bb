import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest
from pydantic import BaseModel

import keel.models
from keel import Agent, Budget, EventKind, Phase, RetryPolicy, RunStatus, ToolContext, tool
from keel.errors import ConfigError, ModelError, ModelRequestsDisabledError, StoreError
from keel.models import Model, ModelRequest, ModelResponse, RequestUsage, ToolCall
from keel.recovery import LoopDetector
from keel.store import MemoryStore
from keel.testing import FunctionModel, ScriptedModel, call, calls, fail, raw_call, reply

ORDERS = {"1234": {"id": "1234", "status": "shipped", "total": 42.5}}


@tool
def get_order(order_id: str) -> dict[str, object]:
    """Look up an order by id."""
    return ORDERS[order_id]


def kinds(result):
    return [e.kind.value for e in result.events]


NO_LOOPS = LoopDetector(max_visits=None, max_idle_steps=None)  # for tests of another bound that repeat one call


def agent_with(model, *, tools=(get_order,), **kwargs) -> Agent:
    return Agent("support", model, instructions="You help customers.", tools=list(tools), store=MemoryStore(), **kwargs)


async def test_completes_with_a_tool_call_and_journals_every_step():
    model = ScriptedModel([call("get_order", order_id="1234"), reply("Order 1234 shipped.")], usage=(120, 30))
    agent = agent_with(model)
    result = await agent.run("Where is order 1234?", session_id="u42")

    assert result.status is RunStatus.COMPLETED
    assert result.output == "Order 1234 shipped."
    kinds_ = ["run_started", "model_called", "tool_called", "checkpoint", "model_called", "run_finished"]
    assert kinds(result) == kinds_  # a checkpoint after each step: its state hash feeds the loop detector
    assert [e.seq for e in result.events] == [1, 2, 3, 4, 5, 6]
    tool_event = result.events[2]
    assert tool_event.payload["arguments"] == {"order_id": "1234"}
    assert json.loads(tool_event.payload["result"]) == ORDERS["1234"]
    assert tool_event.payload["outcome"] == "ok" and tool_event.payload["attempt"] == 1
    assert tool_event.latency_ms >= 0
    # The model's second turn saw the tool result.
    last_seen = model.requests[1].messages[-1]
    assert last_seen.role == "tool" and json.loads(last_seen.content)["status"] == "shipped"
    # The journal in the store is the one in the result.
    assert await agent.store.events(result.run_id) == result.events
    row = await agent.store.get_run(result.run_id)
    assert (row.status, row.session_id, row.steps, row.total_tokens) == (RunStatus.COMPLETED, "u42", 2, 300)


async def test_usage_and_cost_are_accounted_per_call_and_phase():
    model = ScriptedModel(
        [call("get_order", order_id="nope"), call("get_order", order_id="1234"), reply("done")],
        usage=[(1000, 100), (2000, 200), (3000, 300)],
        price=(0.15, 0.60),
    )
    result = await agent_with(model).run("order?")
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.requests, usage.tool_calls) == (6000, 600, 3, 2)
    assert usage.cost_usd == pytest.approx((6000 * 0.15 + 600 * 0.60) / 1e6)
    # The failing lookup (KeyError) sends the next turn to recovery.
    assert usage.by_phase[Phase.EXECUTION].input_tokens == 4000
    assert usage.by_phase["recovery"].input_tokens == 2000
    model_events = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert [e.tokens_in for e in model_events] == [1000, 2000, 3000]
    assert sum(e.cost_usd for e in result.events) == pytest.approx(usage.cost_usd)


async def test_unknown_tool_is_rejected_fed_back_and_the_model_can_correct():
    model = ScriptedModel([call("get_ordr", order_id="1234"), call("get_order", order_id="1234"), reply("ok")])
    result = await agent_with(model).run("order?")
    assert result.status is RunStatus.COMPLETED
    rejected = next(e for e in result.events if e.kind is EventKind.TOOL_REJECTED)
    assert rejected.payload["tool"] == "get_ordr"
    assert "Unknown tool 'get_ordr'" in rejected.payload["reason"]
    feedback = model.requests[1].messages[-1]
    assert feedback.is_error and "Did you mean 'get_order'?" in feedback.content


async def test_invalid_json_and_schema_failures_are_rejected_before_running():
    ran = []

    @tool
    def lookup(order_id: str) -> str:
        """Look up."""
        ran.append(order_id)
        return "found"

    model = ScriptedModel(
        [raw_call("lookup", '{"order_id": '), call("lookup", order=1), call("lookup", order_id="1"), reply("ok")]
    )
    result = await agent_with(model, tools=[lookup]).run("x")
    reasons = [e.payload["reason"] for e in result.events if e.kind is EventKind.TOOL_REJECTED]
    assert "not valid JSON" in reasons[0]
    assert "order_id: Field required" in reasons[1] and "order: Extra inputs are not permitted" in reasons[1]
    assert ran == ["1"]
    assert result.status is RunStatus.COMPLETED


async def test_rejections_are_bounded_then_the_run_ends_partial():
    model = ScriptedModel([call("delete_db") for _ in range(10)])
    result = await agent_with(model, budget=Budget(max_tool_rejections=3)).run("x")
    assert result.status is RunStatus.PARTIAL
    assert "too many rejected tool calls (3" in result.report.reason
    assert kinds(result).count("tool_rejected") == 3
    assert len(model.requests) == 3


async def test_tool_exceptions_and_unserializable_results_go_back_to_the_model():
    @tool
    def explode() -> str:
        """Fails."""
        raise RuntimeError("database is down")

    @tool
    def weird() -> object:
        """Returns something JSON cannot hold."""
        return object()

    model = ScriptedModel([calls(("explode", {}), ("weird", {})), reply("sorry, both failed")])
    result = await agent_with(model, tools=[explode, weird]).run("x")
    assert result.status is RunStatus.COMPLETED
    events = {e.payload["tool"]: e.payload for e in result.events if e.kind is EventKind.TOOL_CALLED}
    assert events["explode"]["outcome"] == "error"
    assert "RuntimeError: database is down" in events["explode"]["error"]
    assert "cannot be serialized to JSON" in events["weird"]["error"]
    replies = [m for m in model.requests[1].messages if m.role == "tool"]
    assert all(m.is_error for m in replies)


async def test_a_tool_timeout_is_enforced():
    @tool(timeout_s=0.05)
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(10)
        return "never"

    model = ScriptedModel([call("slow"), reply("gave up")])
    started = time.monotonic()
    result = await agent_with(model, tools=[slow]).run("x")
    assert time.monotonic() - started < 5
    event = next(e for e in result.events if e.kind is EventKind.TOOL_CALLED)
    assert event.payload["outcome"] == "timeout" and "timed out" in event.payload["error"]


async def test_parallel_tool_calls_run_concurrently():
    barrier = asyncio.Barrier(2)

    @tool
    async def wait_for_partner(name: str) -> str:
        """Only returns when the other call is running too."""
        async with asyncio.timeout(2):
            await barrier.wait()
        return name

    model = ScriptedModel(
        [calls(("wait_for_partner", {"name": "a"}), ("wait_for_partner", {"name": "b"})), reply("ok")]
    )
    result = await agent_with(model, tools=[wait_for_partner]).run("x")
    outcomes = [e.payload["outcome"] for e in result.events if e.kind is EventKind.TOOL_CALLED]
    assert outcomes == ["ok", "ok"]
    # Results go back in the order the model asked for them.
    assert [m.content for m in model.requests[1].messages if m.role == "tool"] == ["a", "b"]


async def test_tool_context_carries_run_identity_and_a_stable_idempotency_key():
    seen: list[ToolContext] = []

    @tool(side_effects=True)
    def pay(ctx: ToolContext, amount: float) -> str:
        """Pay."""
        seen.append(ctx)
        return "paid"

    model = ScriptedModel([calls(("pay", {"amount": 1}), ("pay", {"amount": 1})), reply("ok")])
    agent = agent_with(model, tools=[pay])
    result = await agent.run("x", session_id="s1")
    assert {c.run_id for c in seen} == {result.run_id}
    assert seen[0].session_id == "s1" and seen[0].store.url == agent.store.url  # a read-only view of it
    keys = [c.idempotency_key for c in seen]
    assert keys[0] != keys[1], "two identical calls in one turn are two payments"
    journaled = [e.payload["idempotency_key"] for e in result.events if e.kind is EventKind.TOOL_CALLED]
    assert sorted(journaled) == sorted(keys)


class Answer(BaseModel):
    order_id: str
    status: str


async def test_typed_output_is_validated():
    model = ScriptedModel([reply(Answer(order_id="1234", status="shipped"))])
    result = await agent_with(model, output=Answer).run("x")
    assert result.status is RunStatus.COMPLETED
    assert result.output == Answer(order_id="1234", status="shipped")
    assert model.requests[0].output_schema["required"] == ["order_id", "status"]


async def test_typed_output_gets_a_bounded_correction():
    model = ScriptedModel([reply({"order_id": "1234"}), reply('```json\n{"order_id": "1234", "status": "late"}\n```')])
    result = await agent_with(model, output=Answer).run("x")
    assert result.status is RunStatus.COMPLETED
    assert result.output.status == "late"
    verdicts = [e for e in result.events if e.kind is EventKind.GUARD_VERDICT]
    assert [v.payload["verdict"] for v in verdicts] == ["fail", "pass"]
    assert "status: Field required" in model.requests[1].messages[-1].content
    assert result.usage.by_phase[Phase.VALIDATION].requests == 1

    stubborn = ScriptedModel([reply("not json")] * 5)
    result = await agent_with(stubborn, output=Answer, max_output_retries=2).run("x")
    assert result.status is RunStatus.PARTIAL
    assert result.output == "not json"
    assert len(stubborn.requests) == 3
    assert "output failed schema validation" in result.report.reason


async def test_step_budget_ends_partial_with_the_best_output_and_a_report():
    model = ScriptedModel([call("get_order", order_id="1234")] * 10)
    result = await agent_with(model, budget=Budget(max_steps=3), loop_detector=NO_LOOPS).run("x")
    assert result.status is RunStatus.PARTIAL
    assert "max_steps=3" in result.report.reason
    assert json.loads(result.output)["status"] == "shipped"
    assert result.report.steps == 4 and len(model.requests) == 4  # 3 turns, then the best-effort answer
    assert model.requests[-1].tools == ()  # which may call no tool (this scripted model tried: ignored)
    assert len(result.report.done) == 3 and "final answer" in result.report.not_done
    assert result.events[-1].payload["status"] == "partial"


async def test_token_budget_is_never_crossed():
    model = ScriptedModel([call("get_order", order_id="1234")] * 10, usage=(100, 50))
    result = await agent_with(model, budget=Budget(max_tokens=400), max_output_tokens=50).run("x")
    assert result.status is RunStatus.PARTIAL
    assert result.usage.total_tokens <= 400
    refused = result.events[-2]
    assert refused.kind is EventKind.BUDGET_REFUSED and refused.payload["limit"] == "max_tokens=400"
    assert "budget exhausted" in result.report.reason


async def test_the_last_affordable_call_gets_a_smaller_output_allowance():
    model = ScriptedModel([call("get_order", order_id="1234"), reply("done")], usage=(100, 500))
    budget = Budget(max_tokens=900, answer_reserve=0)  # the whole budget for ordinary turns
    result = await agent_with(model, budget=budget, max_output_tokens=500).run("x")
    assert [r.max_output_tokens for r in model.requests] == [500, 200]
    assert result.usage.total_tokens <= 900


async def test_cost_budget_is_never_crossed():
    model = ScriptedModel([call("get_order", order_id="1234")] * 50, usage=(10_000, 1_000), price=(2.5, 10.0))
    budget = Budget(max_cost_usd=0.10)
    result = await agent_with(model, budget=budget, max_output_tokens=1000, loop_detector=NO_LOOPS).run("x")
    assert result.status is RunStatus.PARTIAL
    assert 0 < result.usage.cost_usd <= 0.10
    assert "max_cost_usd=0.1" in result.report.reason


async def test_wall_time_budget_stops_a_slow_model():
    async def slow(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(10)
        return ModelResponse(text="late")

    started = time.monotonic()
    result = await agent_with(FunctionModel(slow), budget=Budget(timeout_s=0.1)).run("x")
    assert time.monotonic() - started < 5
    assert result.status is RunStatus.PARTIAL, "an exhausted budget is a bounded stop, not a failure"
    assert "wall-time budget exhausted" in result.report.reason


async def test_model_failure_is_an_outcome_not_an_exception():
    result = await agent_with(ScriptedModel([fail("provider down")])).run("x")
    assert result.status is RunStatus.FAILED
    assert "provider down" in result.report.reason

    after_progress = ScriptedModel([call("get_order", order_id="1234"), fail("provider down")])
    result = await agent_with(after_progress).run("x")
    assert result.status is RunStatus.PARTIAL
    assert json.loads(result.output)["id"] == "1234"


async def test_tokens_a_failed_call_consumed_are_charged_to_the_run():
    def stalls(request: ModelRequest) -> ModelResponse:
        raise ModelError("stopped mid-reply", retryable=True, tokens=(300, 700))

    model = FunctionModel(stalls, price=(1.0, 2.0))
    retry = RetryPolicy(max_attempts=3, initial_delay_s=0, jitter=0)
    result = await agent_with(model, budget=Budget(max_tokens=10_000), retry=retry).run("x")

    assert result.status is RunStatus.FAILED
    assert (result.usage.input_tokens, result.usage.output_tokens) == (900, 2100), "every attempt is charged"
    assert result.usage.cost_usd == pytest.approx(3 * (300 * 1.0 + 700 * 2.0) / 1e6)
    failed = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert [e.payload["attempt"] for e in failed] == [1, 2, 3]
    assert all((e.tokens_in, e.tokens_out) == (300, 700) and "stopped mid-reply" in e.payload["error"] for e in failed)


async def test_a_cut_off_answer_is_asked_for_again_shorter_then_partial():
    def truncated(request: ModelRequest) -> ModelResponse:
        return ModelResponse(text="Order 1234 is", finish_reason="length", usage=RequestUsage(10, 5))

    model = FunctionModel(truncated)
    result = await agent_with(model, max_output_retries=1).run("x")
    assert result.status is RunStatus.PARTIAL
    assert result.output == "Order 1234 is" and "cut off" in result.report.reason
    assert (
        len(model.requests) == 2 and "Reply again with a shorter final answer" in model.requests[1].messages[-1].content
    )


async def test_a_cut_off_answer_that_a_shorter_retry_fixes_completes():
    model = ScriptedModel([ModelResponse(text="Order 1234 is", finish_reason="length"), reply("Shipped.")])
    result = await agent_with(model).run("x")
    assert result.status is RunStatus.COMPLETED and result.output == "Shipped."


async def test_an_answer_cut_off_by_the_last_of_the_budget_is_not_asked_for_again():
    def truncated(request: ModelRequest) -> ModelResponse:
        return ModelResponse(text="Order 1234 is", finish_reason="length", usage=RequestUsage(100, 40))

    model = FunctionModel(truncated)
    budget = Budget(max_tokens=300, answer_reserve=0)
    result = await agent_with(model, budget=budget, max_output_tokens=1000).run("x")
    assert result.status is RunStatus.PARTIAL and len(model.requests) == 1
    assert "output tokens the budget had left" in result.report.reason


async def test_decision_trace_links_each_model_call_to_what_informed_it():
    model = ScriptedModel([call("get_order", order_id="1234"), reply("ok")])
    result = await agent_with(model).run("x")
    first, second = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert first.payload["informed_by"] == [1]
    assert second.payload["informed_by"] == [first.seq, first.seq + 1]
    assert first.payload["alternatives"] == ["get_order"]


async def test_programming_errors_propagate_but_the_run_is_still_closed(monkeypatch):
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    agent = Agent("real", "openai:gpt-4o-mini", store=MemoryStore())
    with pytest.raises(ModelRequestsDisabledError):
        await agent.run("x")
    (run,) = await agent.store.list_runs()
    assert run.status is RunStatus.FAILED


async def test_run_sync_inside_an_event_loop_is_a_clear_error():
    with pytest.raises(ConfigError, match="await agent.run"):
        agent_with(ScriptedModel([reply("x")])).run_sync("x")


def test_a_cost_budget_needs_a_known_price(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="pricing table"):
        Agent("a", "openai:my-private-model", budget=Budget(max_cost_usd=1.0), store="memory://")


def test_bad_agent_configuration_is_refused():
    with pytest.raises(ConfigError):
        Budget(max_steps=0)
    with pytest.raises(ConfigError):
        Budget(max_cost_usd=-1)
    with pytest.raises(ConfigError):
        Agent("", ScriptedModel([]))
    with pytest.raises(ConfigError, match="task must be a string"):
        agent_with(ScriptedModel([])).run_sync(123)  # type: ignore[arg-type]


def test_run_sync_works_without_a_loop():
    result = agent_with(ScriptedModel([reply("hi")])).run_sync("hello")
    assert result.ok and result.output == "hi"


async def test_with_store_journals_a_copy_elsewhere():
    agent = agent_with(ScriptedModel([reply("one"), reply("two")]))
    other = MemoryStore()
    copy = agent.with_store(other)
    result = await copy.run("x")
    assert await other.events(result.run_id) == result.events
    assert await agent.store.list_runs() == []
    assert copy.model is agent.model and copy.tools is agent.tools


async def test_a_sync_tool_that_overruns_is_abandoned_without_holding_the_run():
    @tool(timeout_s=0.1)
    def stuck() -> str:
        """Blocks its thread far past its timeout."""
        time.sleep(1.5)
        return "late"

    model = ScriptedModel([call("stuck"), reply("moved on")])
    started = time.monotonic()
    result = await agent_with(model, tools=[stuck]).run("x")
    assert time.monotonic() - started < 1.0
    event = next(e for e in result.events if e.kind is EventKind.TOOL_CALLED)
    assert event.payload["outcome"] == "abandoned"
    assert "may still complete" in model.requests[1].messages[-1].content


def test_run_sync_does_not_wait_for_an_abandoned_sync_tool():
    @tool(timeout_s=0.1)
    def stuck() -> str:
        """Blocks its thread far past its timeout."""
        time.sleep(1.5)
        return "late"

    started = time.monotonic()
    result = agent_with(ScriptedModel([call("stuck"), reply("ok")]), tools=[stuck]).run_sync("x")
    assert result.ok and time.monotonic() - started < 1.0


async def test_a_retried_call_reuses_its_idempotency_key_and_a_repeated_success_does_not():
    attempts: list[str] = []

    @tool(side_effects=True, trusted=True)  # trusted: its own error must not taint the run (then pay would wait)
    def pay(ctx: ToolContext, amount: float) -> str:
        """Pay; fails the first time."""
        attempts.append(ctx.idempotency_key)
        if len(attempts) == 1:
            raise ConnectionError("gateway reset")
        return "paid"

    model = ScriptedModel([call("pay", amount=5), call("pay", amount=5), call("pay", amount=5), reply("ok")])
    result = await agent_with(model, tools=[pay]).run("x")
    assert result.ok
    failed, retried, repeated = attempts
    assert retried == failed, "the retry of a failed payment carries the same key"
    assert repeated != retried, "a second payment after a successful one is a new payment"


class SilentModel(Model):
    """A server that never reports usage (some OpenAI-compatible servers omit it)."""

    name = "test:silent"

    async def request(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse(tool_calls=(ToolCall("c", "get_order", '{"order_id": "1234"}'),))


async def test_missing_usage_is_charged_at_the_reserved_worst_case():
    model = SilentModel()
    result = await agent_with(model, budget=Budget(max_tokens=2_000), max_output_tokens=200).run("x")
    assert result.status is RunStatus.PARTIAL
    calls_ = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert all(e.payload["usage_estimated"] for e in calls_)
    assert all(e.tokens_out == 200 for e in calls_[:-1])
    assert 0 < result.usage.total_tokens <= 2_000


async def test_a_provider_reporting_more_than_reserved_is_noted_and_stopped():
    def greedy(request: ModelRequest) -> ModelResponse:
        return ModelResponse(
            tool_calls=(ToolCall("c", "get_order", '{"order_id": "1234"}'),), usage=RequestUsage(10, 5_000)
        )

    result = await agent_with(FunctionModel(greedy), budget=Budget(max_tokens=2_000), max_output_tokens=100).run("x")
    first = next(e for e in result.events if e.kind is EventKind.MODEL_CALLED)
    assert first.payload["overrun"] == {"reserved": [first.payload["reserved_tokens"] - 100, 100]}
    assert result.status is RunStatus.PARTIAL
    assert len([e for e in result.events if e.kind is EventKind.MODEL_CALLED]) == 1, "no call after the overrun"


async def test_a_model_timeout_is_not_mistaken_for_the_run_running_out_of_time():
    model = ScriptedModel([fail(TimeoutError("upstream read timeout"))])
    result = await agent_with(model, retry=RetryPolicy(max_attempts=1)).run("x")
    assert result.report.reason == "model call timed out: upstream read timeout"
    assert result.usage.requests == 1, "a failed call is still counted"


async def test_a_cancelled_run_is_closed_in_the_store():
    async def hang(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(30)
        return ModelResponse(text="never")

    agent = agent_with(FunctionModel(hang))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(agent.run("x"), timeout=0.1)
    (run,) = await agent.store.list_runs()
    assert run.status is RunStatus.FAILED and run.reason == "cancelled before it finished"
    assert (await agent.store.events(run.run_id))[-1].kind is EventKind.RUN_FINISHED


async def test_a_provider_refusal_is_rejected():
    def refuse(request: ModelRequest) -> ModelResponse:
        return ModelResponse(text="I can't help with that.", finish_reason="content_filter", usage=RequestUsage(5, 5))

    result = await agent_with(FunctionModel(refuse)).run("x")
    assert result.status is RunStatus.REJECTED
    assert "content filter" in result.report.reason


async def test_scripted_runs_journal_the_same_ids_every_time():
    def journal() -> list[str]:
        model = ScriptedModel(
            [calls(("get_order", {"order_id": "1234"}), ("get_order", {"order_id": "1234"})), reply("ok")]
        )
        result = agent_with(model).run_sync("x")
        return [e.payload["call_id"] for e in result.events if e.kind is EventKind.TOOL_CALLED]

    assert await asyncio.to_thread(journal) == await asyncio.to_thread(journal) == ["call_1_1", "call_1_2"]


class FailingStore(MemoryStore):
    async def append(self, event):
        if event.payload.get("tool") == "fast":
            raise StoreError("disk full")
        await super().append(event)


async def test_a_store_failure_in_parallel_calls_cancels_the_others_and_closes_the_run():
    finished = []

    @tool
    async def fast() -> str:
        """Returns at once."""
        return "fast"

    @tool
    async def slow() -> str:
        """Returns later."""
        await asyncio.sleep(0.3)
        finished.append("slow")
        return "slow"

    store = FailingStore()
    model = ScriptedModel([calls(("fast", {}), ("slow", {})), reply("ok")])
    agent = Agent("a", model, tools=[fast, slow], store=store)
    with pytest.raises(StoreError, match="disk full"):
        await agent.run("x")
    await asyncio.sleep(0.4)
    assert finished == []
    (run,) = await store.list_runs()
    events = await store.events(run.run_id)
    assert events[-1].kind is EventKind.RUN_FINISHED and run.status is RunStatus.FAILED


async def test_a_tools_own_timeout_or_exit_is_an_ordinary_tool_error():
    @tool(timeout_s=30)
    async def flaky_socket() -> str:
        """Its own network timeout fires."""
        raise TimeoutError("read timed out")

    @tool
    async def cancels_itself() -> str:
        """Awaits a task that gets cancelled."""
        inner = asyncio.create_task(asyncio.sleep(10))
        inner.cancel()
        return await inner

    @tool
    def exits() -> str:
        """Calls sys.exit in its thread."""
        raise SystemExit(2)

    model = ScriptedModel([calls(("flaky_socket", {}), ("cancels_itself", {}), ("exits", {})), reply("handled")])
    result = await agent_with(model, tools=[flaky_socket, cancels_itself, exits]).run("x")
    assert result.status is RunStatus.COMPLETED
    outcomes = {e.payload["tool"]: e.payload for e in result.events if e.kind is EventKind.TOOL_CALLED}
    assert {name: p["outcome"] for name, p in outcomes.items()} == {
        "flaky_socket": "error",
        "cancels_itself": "error",
        "exits": "error",
    }
    assert "TimeoutError: read timed out" in outcomes["flaky_socket"]["error"]
    assert "SystemExit" in outcomes["exits"]["error"]


HANGING_TOOL = textwrap.dedent(
    """
    import time
    from keel import Agent, tool
    from keel.testing import ScriptedModel, call, reply

    @tool(timeout_s=0.1)
    def hangs() -> str:
        '''Never returns in time.'''
        time.sleep(60)
        return "late"

    agent = Agent("a", ScriptedModel([call("hangs"), reply("done")]), tools=[hangs], store="memory://")
    print(agent.run_sync("x").status.value)
    """
)


def test_an_abandoned_sync_tool_does_not_hold_the_process_at_exit():
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", HANGING_TOOL], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "completed"
    assert time.monotonic() - started < 15
