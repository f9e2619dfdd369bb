"""One model turn runs a bounded number of tool calls (`Budget.max_tool_calls_per_step`); the rest are rejected."""

from __future__ import annotations

import pytest

from keel import Agent, Budget, Escalation, EventKind, ReviewQueue, RunStatus, tool
from keel.errors import ConfigError
from keel.models import ModelRequest, ModelResponse, ToolCall, ToolResultMessage
from keel.recovery import LoopDetector
from keel.store import MemoryStore
from keel.testing import FunctionModel, reply

ran: list[str] = []


@tool
def echo(text: str) -> str:
    """Say the text back."""
    ran.append(text)
    return text


@tool(severity="high", side_effects=True)
def refund(order_id: str) -> str:
    """Refund an order."""
    ran.append(f"refund {order_id}")
    return "refunded"


@pytest.fixture(autouse=True)
def fresh_log() -> None:
    ran.clear()


def turn(count: int, step: int = 0, name: str = "echo", first: ToolCall | None = None) -> ModelResponse:
    echoes = [ToolCall(f"c{step}-{i}", name, f'{{"text": "{step}-{i}"}}') for i in range(count)]
    return ModelResponse(tool_calls=tuple([first, *echoes[1:]] if first else echoes))


def results(request: ModelRequest) -> list[ToolResultMessage]:
    return [m for m in request.messages if isinstance(m, ToolResultMessage)]


def kinds(result) -> list[EventKind]:
    return [e.kind for e in result.events]


async def test_a_turn_of_ten_thousand_calls_runs_the_first_few_and_tells_the_model_about_the_rest() -> None:
    model = FunctionModel(lambda request: reply("done") if results(request) else turn(10_000))
    agent = Agent("desk", model, tools=[echo], store=MemoryStore())

    result = await agent.run("go")

    assert result.status is RunStatus.COMPLETED and result.output == "done"
    assert ran == [f"0-{i}" for i in range(16)], "only the default bound of 16 calls ran"
    assert kinds(result).count(EventKind.TOOL_CALLED) == 16
    rejected = [e.payload for e in result.events if e.kind is EventKind.TOOL_REJECTED]
    assert [p["call_id"] for p in rejected] == [f"c0-{i}" for i in range(16, 10_000)]
    assert rejected[0]["reason"].startswith("Not run: this turn asked for 10000 tool calls, more than the 16")
    assert {p["rejections"] for p in rejected} == {1}, "the calls past the bound are one rejection together"
    answers = results(model.requests[1])
    assert len(answers) == 10_000, "every call the model made is answered"
    assert [a.is_error for a in answers] == [False] * 16 + [True] * 9_984
    assert "max_tool_calls_per_step=16" in answers[-1].content
    assert answers[-1].content == "Not run: over max_tool_calls_per_step=16 (see call c0-16)."
    assert sum(len(a.content) for a in answers[16:]) < 100 * len(answers[16:]), "the history stays small"


async def test_a_model_that_keeps_asking_for_too_many_calls_ends_partial_after_max_tool_rejections() -> None:
    model = FunctionModel(lambda request: turn(5, step=len(results(request))))
    no_loops = LoopDetector(max_visits=None, max_idle_steps=None)
    budget = Budget(max_tool_calls_per_step=2, max_tool_rejections=3)
    agent = Agent("desk", model, tools=[echo], store=MemoryStore(), budget=budget, loop_detector=no_loops)

    result = await agent.run("go")

    assert result.status is RunStatus.PARTIAL
    assert "too many rejected tool calls (3, max_tool_rejections=3)" in result.report.reason
    assert len(ran) == 6 and kinds(result).count(EventKind.TOOL_REJECTED) == 9  # 2 ran, 3 rejected, 3 turns


async def test_a_held_turn_past_the_bound_asks_only_about_calls_that_may_run_and_resumes_within_it() -> None:
    first = ToolCall("c0-0", "refund", '{"order_id": "A-1"}')
    model = FunctionModel(lambda request: reply("done") if results(request) else turn(5, first=first))
    agent = Agent(
        "desk",
        model,
        tools=[echo, refund],
        store=MemoryStore(),
        budget=Budget(max_tool_calls_per_step=3),
        escalation=Escalation(severity="high"),
    )
    paused = await agent.run("go")
    assert paused.status is RunStatus.ESCALATED and ran == []
    queue = ReviewQueue(agent.store)
    [item] = await queue.pending(run_id=paused.run_id)
    await queue.approve(item.id, by="alice")

    result = await agent.resume(paused.run_id)

    assert result.status is RunStatus.COMPLETED
    assert ran == ["refund A-1", "0-1", "0-2"]
    rejected = [e.payload["call_id"] for e in result.events if e.kind is EventKind.TOOL_REJECTED]
    assert rejected == ["c0-3", "c0-4"]
    assert len(results(model.requests[-1])) == 5


async def test_a_resumed_run_counts_a_past_turn_over_the_bound_as_one_rejection_as_the_live_run_did() -> None:
    def model(request: ModelRequest) -> ModelResponse:
        answered = len(results(request))
        if answered == 0:
            return turn(5)  # 2 run, 3 rejected: one rejection
        if answered == 5:
            return turn(1, step=1, name="refund", first=ToolCall("c1-0", "refund", '{"order_id": "A-1"}'))
        return reply("done")

    budget = Budget(max_tool_calls_per_step=2, max_tool_rejections=3)
    agent = Agent(
        "desk", FunctionModel(model), tools=[echo, refund], store=MemoryStore(), budget=budget,
        escalation=Escalation(severity="high"),
    )  # fmt: skip
    paused = await agent.run("go")
    assert paused.status is RunStatus.ESCALATED
    queue = ReviewQueue(agent.store)
    [item] = await queue.pending(run_id=paused.run_id)
    await queue.approve(item.id, by="alice")

    result = await agent.resume(paused.run_id)

    assert result.status is RunStatus.COMPLETED, result.report.reason  # not "too many rejected tool calls (3"
    assert ran == ["0-0", "0-1", "refund A-1"]


@pytest.mark.parametrize("bad", [0, -1, "16", 2.5, None])
def test_the_bound_must_be_a_positive_number(bad: object) -> None:
    with pytest.raises(ConfigError, match="Budget.max_tool_calls_per_step must be"):
        Budget(max_tool_calls_per_step=bad)  # type: ignore[arg-type]
