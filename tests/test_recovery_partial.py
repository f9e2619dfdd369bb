"""Partial completion (E5, C3): a run stopped by a bound answers from what it gathered, within a reserved slice."""

import pytest

from keel import Agent, Budget, EventKind, Phase, RunStatus, tool
from keel.errors import ConfigError
from keel.guardrails import PIIGuard
from keel.models import ModelRequest, ModelResponse, RequestUsage, ToolCall
from keel.recovery import LoopDetector
from keel.store import MemoryStore
from keel.testing import FunctionModel, ScriptedModel, call, fail, reply

NO_LOOPS = LoopDetector(max_visits=None, max_idle_steps=None)


@tool(trusted=True)
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped on 2024-07-18 with UPS"


@tool(trusted=True)
def read_manual(page: int) -> str:
    """Read a page of the (long) manual."""
    return f"page {page}: " + "lorem ipsum " * 12000


def wanders(final_answer: str = "Order 7 shipped on 2024-07-18; I could not check the refund."):
    """A model that keeps looking orders up until it is told to stop, then answers."""

    def respond(request: ModelRequest) -> ModelResponse:
        if not request.tools:  # the best-effort call: no tools offered
            return ModelResponse(text=final_answer, usage=RequestUsage(200, 20))
        n = len(request.messages)
        return ModelResponse(
            tool_calls=(ToolCall(f"c{n}", "get_order", f'{{"order_id": "{n}"}}'),), usage=RequestUsage(200, 20)
        )

    return respond


def desk(model, **kwargs) -> Agent:
    kwargs.setdefault("loop_detector", NO_LOOPS)
    return Agent("desk", model, tools=[get_order, read_manual], store=MemoryStore(), guards=[], **kwargs)


def summarization_calls(result) -> list:
    return [e for e in result.events if e.kind is EventKind.MODEL_CALLED and e.phase is Phase.SUMMARIZATION]


async def test_a_run_out_of_steps_answers_from_what_it_gathered() -> None:
    model = FunctionModel(wanders())
    result = await desk(model, budget=Budget(max_steps=3)).run("Where is order 7, and was it refunded?")

    assert result.status is RunStatus.PARTIAL
    assert result.output == "Order 7 shipped on 2024-07-18; I could not check the refund."
    report = result.report
    assert "max_steps=3" in report.reason and "best-effort answer from what was gathered" in report.done
    assert len([line for line in report.done if "get_order" in line]) == 3
    assert report.cost_usd == result.usage.cost_usd and report.steps == 4
    [final] = summarization_calls(result)
    asked = model.requests[-1]
    assert asked.tools == () and "cannot call any more tools" in asked.messages[-1].content
    assert final.payload["text"] == result.output
    assert result.usage.by_phase["summarization"].requests == 1


async def test_the_reserve_pays_for_the_answer_when_the_token_budget_stops_the_run() -> None:
    result = await desk(FunctionModel(wanders()), budget=Budget(max_tokens=2_000), max_output_tokens=50).run("x")

    assert result.status is RunStatus.PARTIAL and "max_tokens=2000" in result.report.reason
    assert result.output.startswith("Order 7 shipped")
    assert result.usage.total_tokens <= 2_000
    assert len(summarization_calls(result)) == 1


async def test_the_reserve_pays_for_the_answer_when_the_cost_budget_stops_the_run() -> None:
    model = FunctionModel(wanders(), price=(100.0, 100.0))  # 0.022 USD a turn
    result = await desk(model, budget=Budget(max_cost_usd=0.1), max_output_tokens=50).run("x")

    assert result.status is RunStatus.PARTIAL and "max_cost_usd=0.1" in result.report.reason
    assert result.output.startswith("Order 7 shipped") and 0 < result.usage.cost_usd <= 0.1


async def test_a_conversation_too_big_for_the_reserve_is_answered_from_a_compact_digest() -> None:
    pages = iter(range(1, 50))

    def reads(request: ModelRequest) -> ModelResponse:
        if not request.tools:
            return ModelResponse(text="The manual covers setup.", usage=RequestUsage(500, 10))
        page = next(pages)
        return ModelResponse(tool_calls=(ToolCall(f"p{page}", "read_manual", f'{{"page": {page}}}'),))

    model = FunctionModel(reads)
    result = await desk(model, budget=Budget(max_tokens=60_000), max_output_tokens=64).run("Summarize the manual")

    assert result.status is RunStatus.PARTIAL and result.output == "The manual covers setup."
    [asked] = [r for r in model.requests if not r.tools]
    assert len(asked.messages) == 1 and "What the tools returned so far" in asked.messages[0].content
    assert result.usage.total_tokens <= 60_000


async def test_no_best_effort_call_without_a_reserve_after_a_provider_failure_or_without_results() -> None:
    no_reserve = await desk(FunctionModel(wanders()), budget=Budget(max_steps=2, answer_reserve=0)).run("x")
    assert summarization_calls(no_reserve) == [] and no_reserve.output == "order 3: shipped on 2024-07-18 with UPS"

    provider_down = ScriptedModel([call("get_order", order_id="7"), fail("provider down")])
    down = await desk(provider_down).run("x")
    assert down.status is RunStatus.PARTIAL and summarization_calls(down) == []

    nothing_gathered = await desk(ScriptedModel([call("ghost")] * 5)).run("x")
    assert nothing_gathered.status is RunStatus.PARTIAL and summarization_calls(nothing_gathered) == []


async def test_the_best_effort_answer_goes_through_the_output_guards() -> None:
    leaky = wanders("Order 7 shipped; the customer is jane.doe@example.com.")
    agent = Agent(
        "desk",
        FunctionModel(leaky),
        tools=[get_order],
        store=MemoryStore(),
        loop_detector=NO_LOOPS,
        guards=[PIIGuard(mode="redact")],
        budget=Budget(max_steps=2),
    )
    result = await agent.run("x")

    assert result.status is RunStatus.PARTIAL
    assert result.output == "Order 7 shipped; the customer is [email]."


async def test_a_loop_break_is_followed_by_a_best_effort_answer() -> None:
    script = [call("get_order", order_id="7")] * 3 + [reply("Order 7 shipped.")]
    result = await Agent("desk", ScriptedModel(script), tools=[get_order], store=MemoryStore(), guards=[]).run("x")

    assert result.status is RunStatus.PARTIAL and result.report.reason.startswith("loop detected")
    assert result.output == "Order 7 shipped."


@pytest.mark.parametrize("reserve", [-0.1, 0.9, "10%", True])
def test_a_reserve_outside_0_to_half_is_a_config_error(reserve: object) -> None:
    with pytest.raises(ConfigError, match="answer_reserve must be a share between 0 and 0.5"):
        Budget(answer_reserve=reserve)  # type: ignore[arg-type]
