"""Loop detection (E4): repeated states, cycles and steps without new information are nudged once, then broken."""

import pytest

from keel import Agent, EventKind, ReviewQueue, RunStatus, tool
from keel.errors import ConfigError
from keel.recovery import LoopDetector
from keel.store import MemoryStore
from keel.testing import ScriptedModel, call, reply

STATUS = {"1": "shipped", "2": "delayed"}


@tool(trusted=True)
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: {STATUS.get(order_id, 'unknown')}"


@tool(trusted=True)
def search(query: str) -> str:
    """Search the help centre (it has nothing)."""
    return "no results"


polls: list[int] = []


@tool(trusted=True)
def job_status(job_id: str) -> str:
    """Poll a job; it finishes on the fourth poll."""
    polls.append(1)
    return "done" if len(polls) >= 4 else f"running ({len(polls) * 25}%)"


def desk(model, **kwargs) -> Agent:
    return Agent("desk", model, tools=[get_order, job_status, search], store=MemoryStore(), guards=[], **kwargs)


def loops(result) -> list[dict]:
    return [e.payload for e in result.events if e.kind is EventKind.LOOP_DETECTED]


async def test_the_same_call_with_the_same_result_is_nudged_once_then_broken() -> None:
    model = ScriptedModel([call("get_order", order_id="1")] * 10)
    result = await desk(model).run("where is order 1?")

    assert result.status is RunStatus.PARTIAL and result.report.reason.startswith("loop detected")
    assert [(p["kind"], p["action"]) for p in loops(result)] == [("repeat", "nudge"), ("repeat", "break")]
    assert len(model.requests) == 4  # the loop cost two extra turns, not ten; then the best-effort answer
    assert model.requests[3].tools == ()
    nudge = model.requests[2].messages[-1]
    assert nudge.role == "user" and "You are repeating yourself" in nudge.content and "get_order" in nudge.content
    hashes = [
        e.payload["state_hash"] for e in result.events if e.kind is EventKind.CHECKPOINT and "state_hash" in e.payload
    ]
    assert len(hashes) == 3 and len(set(hashes)) == 1


async def test_an_a_b_a_b_cycle_is_caught() -> None:
    script = [call("get_order", order_id="1"), call("get_order", order_id="2")] * 5
    result = await desk(ScriptedModel(script)).run("compare orders 1 and 2")

    assert result.status is RunStatus.PARTIAL
    assert [(p["period"], p["action"]) for p in loops(result)] == [(2, "nudge"), (2, "break")]
    assert "cycle" in result.report.reason


async def test_steps_that_bring_nothing_new_are_a_loop_too() -> None:
    script = [call("search", query=f"parcel {n}") for n in range(20)]  # new calls, the same empty answer
    result = await desk(ScriptedModel(script), loop_detector=LoopDetector(max_idle_steps=3)).run("find my order")

    assert result.status is RunStatus.PARTIAL
    assert [(p["kind"], p["action"]) for p in loops(result)] == [("no_progress", "nudge"), ("no_progress", "break")]
    assert "brought no new information" in result.report.reason


async def test_polling_that_learns_something_each_time_is_not_a_loop() -> None:
    polls.clear()
    script = [call("job_status", job_id="j")] * 4 + [reply("The job is done.")]
    result = await desk(ScriptedModel(script)).run("wait for job j")

    assert result.status is RunStatus.COMPLETED and loops(result) == []


async def test_without_a_nudge_the_first_return_breaks_the_loop() -> None:
    model = ScriptedModel([call("get_order", order_id="1")] * 10)
    result = await desk(model, loop_detector=LoopDetector(nudge=False)).run("x")

    assert [p["action"] for p in loops(result)] == ["break"] and len(model.requests) == 3  # + best effort


async def test_a_loop_can_go_to_a_person_who_lets_the_run_go_on() -> None:
    script = [call("get_order", order_id="1")] * 3 + [reply("Order 1 has shipped.")]
    model = ScriptedModel(script)
    agent = desk(model, loop_detector=LoopDetector(on_loop="escalate"))
    paused = await agent.run("where is order 1?")

    assert paused.status is RunStatus.ESCALATED and loops(paused)[-1]["action"] == "escalate"
    queue = ReviewQueue(agent.store)
    [item] = await queue.pending(run_id=paused.run_id)
    assert item.action == "continue" and "looping" in item.reason
    await queue.approve(item.id, by="ops", note="give it one more go")
    resumed = await agent.resume(paused.run_id)

    assert resumed.status is RunStatus.COMPLETED and resumed.output == "Order 1 has shipped."
    told = model.requests[-1].messages[-1]
    assert "let you continue" in told.content and "give it one more go" in told.content


async def test_a_person_can_stop_a_looping_run() -> None:
    agent = desk(ScriptedModel([call("get_order", order_id="1")] * 5), loop_detector=LoopDetector(on_loop="escalate"))
    paused = await agent.run("x")
    [item] = await ReviewQueue(agent.store).pending(run_id=paused.run_id)
    await ReviewQueue(agent.store).deny(item.id, by="ops")

    stopped = await agent.resume(paused.run_id)
    assert stopped.status is RunStatus.PARTIAL and "ops stopped the run" in stopped.report.reason


async def test_a_resumed_run_remembers_the_states_it_visited() -> None:
    # Paused for an unrelated reason after one lookup; the same lookup after the resume is a return.
    @tool(severity="critical", side_effects=True, trusted=True)
    def cancel(order_id: str) -> str:
        """Cancel an order."""
        return "cancelled"

    script = [call("get_order", order_id="1"), call("cancel", order_id="1")] + [call("get_order", order_id="1")] * 5
    agent = Agent(
        "desk",
        ScriptedModel(script),
        tools=[get_order, cancel],
        store=MemoryStore(),
        guards=[],
        loop_detector=LoopDetector(nudge=False),
    )
    paused = await agent.run("x")
    [item] = await ReviewQueue(agent.store).pending(run_id=paused.run_id)
    await ReviewQueue(agent.store).approve(item.id, by="ops")
    resumed = await agent.resume(paused.run_id)

    assert resumed.status is RunStatus.PARTIAL and loops(resumed)[-1]["period"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_visits": 1}, "max_visits must be a whole number of at least 2"),
        ({"max_idle_steps": 0}, "max_idle_steps must be a whole number of at least 2"),
        ({"max_visits": 2.5}, "max_visits"),
        ({"on_loop": "ignore"}, "on_loop must be 'partial' or 'escalate'"),
    ],
)
def test_bad_loop_settings_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LoopDetector(**kwargs)
    with pytest.raises(ConfigError, match="loop_detector must be a LoopDetector"):
        desk(ScriptedModel([reply("x")]), loop_detector={"max_visits": 3})
