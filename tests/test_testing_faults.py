import datetime
import json
import subprocess
import sys
import textwrap
import time
from typing import Literal

import pytest
from pydantic import BaseModel

from keel import Agent, Budget, EventKind, RunStatus, ToolContext, tool
from keel.errors import ConfigError, ModelError
from keel.models import ModelRequest, ToolSpec, UserMessage
from keel.store import MemoryStore
from keel.testing import (
    ChaosModel,
    EffectLog,
    FaultyModel,
    FlakyTool,
    FunctionModel,
    GarbageTool,
    HangingTool,
    InjectedFault,
    ScriptedModel,
    call,
    calls,
    reply,
)
from keel.testing.model_faults import FAULTS

ENDED = {RunStatus.COMPLETED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.REJECTED}


@tool
def lookup(order_id: str) -> str:
    """Look up an order."""
    return f"order {order_id}: shipped"


class Item(BaseModel):
    sku: str
    qty: int = 1


@tool
def open_ticket(
    title: str,
    priority: Literal["low", "high"],
    count: int,
    urgent: bool,
    amount: float,
    tags: list[str],
    item: Item,
    due: datetime.date | None = None,
) -> str:
    """Open a ticket."""
    return "opened"


def agent_with(model, *tools, **kwargs) -> Agent:
    return Agent("chaos", model, tools=list(tools or [lookup]), store=MemoryStore(), guards=[], **kwargs)


def tool_events(result):
    return [e.payload for e in result.events if e.kind is EventKind.TOOL_CALLED]


def request(*tools: ToolSpec, max_output_tokens: int = 1024) -> ModelRequest:
    return ModelRequest("be brief", (UserMessage("hi"),), tools=tools, max_output_tokens=max_output_tokens)


LOOKUP_SPEC = ToolSpec(lookup.name, lookup.description, lookup.parameters)


# --- tool faults ---------------------------------------------------------------------------------------------------


def failure_pattern(flaky: FlakyTool, n: int) -> list[bool]:
    pattern = []
    for i in range(n):
        try:
            flaky.tool(order_id=str(i))
        except InjectedFault:
            pattern.append(True)
        else:
            pattern.append(False)
    return pattern


def test_flaky_tool_fails_at_about_its_rate_and_is_deterministic_under_a_seed():
    flaky = FlakyTool(lookup, 0.3, seed=7)
    pattern = failure_pattern(flaky, 2000)
    assert 0.25 < sum(pattern) / 2000 < 0.35
    assert (flaky.calls, flaky.failures, flaky.successes) == (2000, sum(pattern), 2000 - sum(pattern))
    assert failure_pattern(FlakyTool(lookup, 0.3, seed=7), 2000) == pattern
    assert failure_pattern(FlakyTool(lookup, 0.3, seed=8), 2000) != pattern
    assert (flaky.tool.name, flaky.tool.parameters, flaky.tool.is_async) == (lookup.name, lookup.parameters, False)


def test_flaky_tool_extremes_and_bad_rates():
    assert not any(failure_pattern(FlakyTool(lookup, 0.0), 50))
    assert all(failure_pattern(FlakyTool(lookup, 1.0), 50))
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ConfigError, match="probability"):
            FlakyTool(lookup, bad)


async def test_a_failing_flaky_tool_is_journaled_as_an_error_and_the_run_goes_on():
    flaky = FlakyTool(lookup, 1.0, error=lambda: ValueError("backend said no"))
    model = ScriptedModel([call("lookup", order_id="1"), reply("could not look it up")])
    result = await agent_with(model, flaky.tool).run("where is order 1?")
    assert result.status is RunStatus.COMPLETED
    events = tool_events(result)
    assert events and all(e["outcome"] == "error" and "ValueError: backend said no" in e["error"] for e in events)
    assert flaky.calls == flaky.failures >= 1 and flaky.successes == 0


async def test_flaky_tool_can_fail_after_the_effect_happened():
    effects = []

    @tool
    async def charge(amount: float) -> str:
        """Charge the card."""
        effects.append(amount)
        return "charged"

    flaky = FlakyTool(charge, 1.0, after=True)
    with pytest.raises(InjectedFault):
        await flaky.tool(amount=5.0)
    assert effects == [5.0], "the effect ran, then the answer was lost"
    assert (flaky.calls, flaky.failures, flaky.successes) == (1, 1, 0)


async def test_hanging_tool_times_out_within_a_bounded_time():
    hang = HangingTool("fetch_report", timeout_s=0.2)
    model = ScriptedModel([call("fetch_report"), reply("the report is not available")])
    started = time.monotonic()
    result = await agent_with(model, hang.tool).run("get the report")
    assert time.monotonic() - started < 10
    assert result.status in ENDED
    events = tool_events(result)
    assert events and {e["outcome"] for e in events} == {"timeout"}
    assert hang.calls >= 1 and hang.cancelled == hang.calls


def test_a_hung_sync_tool_does_not_keep_the_interpreter_alive():
    script = textwrap.dedent(
        """
        from keel import Agent
        from keel.store import MemoryStore
        from keel.testing import HangingTool, ScriptedModel, call, reply

        hang = HangingTool(timeout_s=0.2, sync=True)
        model = ScriptedModel([call("hang"), reply("gave up")] * 5)
        result = Agent("a", model, tools=[hang.tool], store=MemoryStore(), guards=[]).run_sync("x")
        print(result.status.value, [e.payload["outcome"] for e in result.events if e.kind.value == "tool_called"])
        """
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    status, outcomes = done.stdout.split(" ", 1)
    assert status in {s.value for s in ENDED}
    assert "abandoned" in outcomes or "timeout" in outcomes


@pytest.mark.parametrize("kind", ["unserializable", "circular", "invalid_utf8"])
async def test_garbage_results_are_journaled_as_errors_not_crashes(kind):
    garbage = GarbageTool(kind, name="fetch_record")
    model = ScriptedModel([call("fetch_record"), reply("the record is unreadable")])
    result = await agent_with(model, garbage.tool).run("read the record")
    assert result.status is RunStatus.COMPLETED
    (event,) = tool_events(result)
    assert event["outcome"] == "error" and "cannot be serialized to JSON" in event["error"]
    assert garbage.calls == 1
    assert model.requests[1].messages[-1].is_error


async def test_huge_and_surrogate_garbage_do_not_crash_a_run_in_memory():
    huge = GarbageTool("huge", name="dump", size=200_000)
    weird = GarbageTool("surrogate", name="decode")
    model = ScriptedModel([calls(("dump", {}), ("decode", {})), reply("done")])
    result = await agent_with(model, huge.tool, weird.tool).run("x")
    assert result.status in ENDED
    assert {e["tool"] for e in tool_events(result)} == {"dump", "decode"}
    with pytest.raises(ConfigError, match="kind"):
        GarbageTool("nonsense")  # type: ignore[arg-type]


async def test_surrogate_garbage_does_not_crash_a_run_on_sqlite(tmp_path):
    weird = GarbageTool("surrogate", name="decode")
    model = ScriptedModel([call("decode"), reply("done")])
    agent = Agent("chaos", model, tools=[weird.tool], store=str(tmp_path / "keel.db"), guards=[])
    result = await agent.run("x")
    assert result.status in ENDED


# --- side-effect log -----------------------------------------------------------------------------------------------


async def test_effect_log_records_each_invocation_with_its_idempotency_key():
    log = EffectLog()
    seen: list[ToolContext] = []

    @tool(side_effects=True)
    def pay(amount: float) -> str:
        """Pay."""
        return "paid"

    @tool(side_effects=True)
    async def refund(ctx: ToolContext, amount: float) -> str:
        """Refund."""
        seen.append(ctx)
        return "refunded"

    model = ScriptedModel(
        [calls(("pay", {"amount": 1}), ("pay", {"amount": 1}), ("refund", {"amount": 2})), reply("ok")]
    )
    result = await agent_with(model, log.wrap(pay), log.wrap(refund)).run("x")
    assert result.status is RunStatus.COMPLETED
    assert sorted(e.tool for e in log.effects) == ["pay", "pay", "refund"]
    journaled = sorted(e["idempotency_key"] for e in tool_events(result))
    assert sorted(e.idempotency_key for e in log.effects) == journaled
    assert seen and seen[0].idempotency_key in log.counts(), "a tool's own ToolContext still reaches it"
    assert log.duplicates() == {}
    log.record(seen[0])
    assert log.duplicates() == {seen[0].idempotency_key: 2}


def test_effect_log_counts_across_processes(tmp_path):
    path = tmp_path / "effects.jsonl"
    script = textwrap.dedent(
        """
        import sys
        from keel import Agent, tool
        from keel.store import MemoryStore
        from keel.testing import EffectLog, ScriptedModel, calls, reply

        @tool(side_effects=True)
        def send_email(to: str) -> str:
            \"\"\"Send an email.\"\"\"
            return "sent"

        log = EffectLog(sys.argv[1])
        model = ScriptedModel([calls(("send_email", {"to": "a"}), ("send_email", {"to": "b"})), reply("ok")])
        agent = Agent("a", model, tools=[log.wrap(send_email)], store=MemoryStore(), guards=[])
        print(agent.run_sync("x").status.value)
        """
    )
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "completed"
    with path.open("a") as file:
        file.write('{"tool": "send_email", "idem')  # a write cut short by a crash
    effects = EffectLog(path).read()
    assert len(effects) == 4 and {e.tool for e in effects} == {"send_email"}
    assert len({e.pid for e in effects}) == 2
    assert len({e.run_id for e in effects}) == 2
    assert EffectLog(path).duplicates() == {}, "each run's calls carry their own keys"
    assert EffectLog(tmp_path / "missing.jsonl").read() == []


# --- model faults --------------------------------------------------------------------------------------------------


async def test_faulty_model_raises_the_scheduled_provider_errors():
    model = FaultyModel(
        ScriptedModel([reply("ok")]), schedule=["rate_limit", "server_error", "client_error"], retry_after_s=0.5
    )
    errors = []
    for _ in range(3):
        with pytest.raises(ModelError) as caught:
            await model.request(request())
        errors.append(caught.value)
    assert [(e.status_code, e.retryable) for e in errors] == [(429, True), (503, True), (400, False)]
    assert [e.retry_after_s for e in errors] == [0.5, None, None]
    assert (await model.request(request())).text == "ok", "the script resumes after the faults"
    assert model.faults == ["rate_limit", "server_error", "client_error", None]
    assert model.injected == {"rate_limit": 1, "server_error": 1, "client_error": 1}


async def test_faulty_model_injects_bad_responses_as_scheduled():
    inner = ScriptedModel([call("lookup", order_id="1"), reply("done")], usage=(50, 10), price=(1.0, 2.0))
    schedule = [None, "loop", "unknown_tool", "malformed_arguments", "refusal", "empty", "truncated", "loop"]
    model = FaultyModel(inner, schedule=schedule)
    assert (model.name, model.price, model.count_input_tokens(request())) == (inner.name, inner.price, 50)
    first, loop, unknown, malformed, refusal, empty, truncated, loop_again = [
        await model.request(request(LOOKUP_SPEC, max_output_tokens=300)) for _ in schedule
    ]
    assert [(c.name, c.arguments) for c in loop.tool_calls] == [(c.name, c.arguments) for c in first.tool_calls]
    assert unknown.tool_calls[0].name != "lookup"
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.tool_calls[0].arguments)
    assert (refusal.finish_reason, empty.text, empty.tool_calls) == ("content_filter", None, ())
    assert truncated.finish_reason == "length" and truncated.usage.output_tokens == 300
    assert loop_again.tool_calls[0].name == "lookup", "a loop repeats the last tool call, whatever came between"
    assert all(r.usage.input_tokens == 50 and r.usage.output_tokens > 0 for r in (loop, unknown, refusal, empty))
    assert sum(model.injected.values()) == 7 and model.injected["loop"] == 2
    assert len(inner.requests) == 1, "injected turns do not consume the script"


async def test_faulty_model_is_deterministic_under_a_seed_and_validates_its_config():
    async def run(seed):
        model = FaultyModel(
            FunctionModel(lambda r: "ok"), p={"rate_limit": 0.2, "refusal": 0.2, "loop": 0.1}, seed=seed
        )
        for _ in range(200):
            try:
                await model.request(request(LOOKUP_SPEC))
            except ModelError:
                pass
        return model

    first, same, other = await run(3), await run(3), await run(4)
    assert first.faults == same.faults != other.faults
    assert 20 < first.injected["rate_limit"] < 60 and 5 < first.injected["loop"] < 35
    assert first.faults.count(None) == 200 - sum(first.injected.values())
    with pytest.raises(ConfigError):
        FaultyModel(FunctionModel(lambda r: "ok"), p={"rate_limit": 0.7, "refusal": 0.7})
    with pytest.raises(ConfigError):
        FaultyModel(FunctionModel(lambda r: "ok"), schedule=["meteor_strike"])  # type: ignore[list-item]


@pytest.mark.parametrize("fault", FAULTS)
async def test_an_agent_on_a_faulty_model_always_ends_with_a_status(fault):
    script = [call("lookup", order_id="1"), reply("Order 1 shipped.")]
    model = FaultyModel(ScriptedModel(script, usage=(100, 20), price=(1.0, 1.0)), schedule=[fault])
    result = await agent_with(model, budget=Budget(max_steps=6)).run("where is order 1?")
    assert result.status in ENDED
    assert model.faults[0] == fault and model.injected[fault] == 1
    assert result.usage.requests >= 1
    if fault not in ("rate_limit", "server_error", "client_error"):
        first = next(e for e in result.events if e.kind is EventKind.MODEL_CALLED)
        assert first.tokens_in == 100 and first.cost_usd > 0, "an injected turn is paid for like a real one"


async def test_what_an_agent_makes_of_bad_responses_today():
    async def status_after(fault):
        model = FaultyModel(ScriptedModel([call("lookup", order_id="1"), reply("shipped")]), schedule=[fault])
        result = await agent_with(model).run("x")
        return result.status, [e.kind for e in result.events]

    assert (await status_after("refusal"))[0] is RunStatus.REJECTED
    assert (await status_after("truncated"))[0] is RunStatus.COMPLETED  # asked again, shorter: the script answers
    for fault in ("unknown_tool", "malformed_arguments"):
        status, kinds = await status_after(fault)
        assert status is RunStatus.COMPLETED and EventKind.TOOL_REJECTED in kinds, fault


# --- chaos model ---------------------------------------------------------------------------------------------------


async def test_chaos_model_calls_allowed_tools_with_valid_arguments_when_it_does_not_fault():
    specs = [ToolSpec(t.name, t.description, t.parameters) for t in (lookup, open_ticket)]
    models = {t.name: t.args_model for t in (lookup, open_ticket)}
    model = ChaosModel(seed=1, p={}, p_answer=0.0)
    for _ in range(100):
        response = await model.request(request(*specs))
        for c in response.tool_calls:
            models[c.name].model_validate_json(c.arguments)
        assert response.usage.input_tokens > 0 and response.usage.output_tokens >= 10
    assert model.injected == {}


@pytest.mark.parametrize("seed", range(12))
async def test_any_chaos_ends_bounded_with_a_status(seed):
    budget = Budget(max_steps=8, max_tokens=20_000, max_cost_usd=0.01, timeout_s=20)
    model = ChaosModel(seed=seed, p={f: 0.07 for f in FAULTS if not f.endswith("error")} | {"rate_limit": 0.02})
    result = await agent_with(model, lookup, open_ticket, budget=budget).run("handle the customer")
    assert result.status in ENDED
    # every attempt counts against max_steps; a run stopped by a bound may make one best-effort call beyond it
    assert result.usage.requests <= 8 + 1 and result.usage.total_tokens <= 20_000 and result.usage.cost_usd <= 0.01
    assert result.report.reason


async def test_chaos_is_reproducible_and_explores_every_fault():
    async def journal(seed):
        model = ChaosModel(seed=seed, p_answer=0.1)
        result = await agent_with(model, lookup, open_ticket, budget=Budget(max_steps=6)).run("x")
        return [(e.kind, e.payload.get("outcome")) for e in result.events], model.injected

    assert (await journal(5))[0] == (await journal(5))[0]
    seen = set()
    for seed in range(40):
        seen |= set((await journal(seed))[1])
        if seen == set(FAULTS):
            break
    assert seen == set(FAULTS)
