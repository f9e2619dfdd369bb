"""Resuming an escalated run (G4): approved actions run exactly once, denied ones are reported, nothing repeats."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from escalation_agents import desk_model, fetch_ticket, refund
from keel import Agent, Escalation, EventKind, ReviewQueue, RunStatus, ToolContext, tool
from keel.errors import ResumeError, UnknownRunError
from keel.guardrails import PIIGuard
from keel.models import ToolResultMessage, UserMessage
from keel.recovery import LoopDetector
from keel.store import MemoryStore, SQLiteStore
from keel.testing import FunctionModel, ScriptedModel, call, calls, reply

TESTS = Path(__file__).parent


@pytest.fixture
def refunds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "refunds.txt"
    monkeypatch.setenv("KEEL_TEST_REFUNDS", str(path))
    return path


def refunded(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def desk(store=None, model=None, **kwargs) -> Agent:
    model = model or FunctionModel(desk_model)
    return Agent("desk", model, tools=[fetch_ticket, refund], store=store or MemoryStore(), **kwargs)


def kinds(result) -> list[EventKind]:
    return [e.kind for e in result.events]


async def paused(agent: Agent):
    result = await agent.run("Please look at ticket T-1.", session_id="s-1")
    assert result.status is RunStatus.ESCALATED
    [item] = await ReviewQueue(agent.store).pending(run_id=result.run_id)
    return result, item


async def test_an_approved_action_runs_exactly_once_and_the_run_completes(refunds: Path) -> None:
    agent = desk()
    first, item = await paused(agent)
    await ReviewQueue(agent.store).approve(item.id, by="alice", note="customer verified")

    result = await agent.resume(first.run_id)

    assert result.status is RunStatus.COMPLETED and result.run_id == first.run_id
    assert result.output == "Done: refunded 500.0 on A-1002."
    assert refunded(refunds) == ["A-1002 500.0"]
    decided = next(e for e in result.events if e.kind is EventKind.REVIEW_DECIDED).payload
    assert decided["decision"] == "approved" and decided["by"] == "alice" and decided["note"] == "customer verified"
    tools = [e.payload["tool"] for e in result.events if e.kind is EventKind.TOOL_CALLED]
    assert tools == ["fetch_ticket", "refund"]  # the ticket is read back from the journal, not fetched again
    row = await agent.store.get_run(first.run_id)
    assert row.status is RunStatus.COMPLETED and row.steps == result.report.steps == 3
    assert result.events == await agent.store.events(first.run_id)
    assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))


async def test_a_denied_action_is_reported_to_the_model_and_the_run_goes_on(refunds: Path) -> None:
    model = FunctionModel(desk_model)
    agent = desk(model=model)
    first, item = await paused(agent)
    await ReviewQueue(agent.store).deny(item.id, by="bob", note="amount looks wrong")

    result = await agent.resume(first.run_id)

    assert result.status is RunStatus.COMPLETED
    assert result.output == "The refund was not made: a reviewer declined it."
    assert refunded(refunds) == []
    told = model.requests[-1].messages[-1]
    assert isinstance(told, ToolResultMessage) and told.is_error and told.name == "refund"
    assert "bob" in told.content and "amount looks wrong" in told.content and "not run" in told.content
    assert any("refund" in line and "denied by bob" in line for line in result.report.not_done)


async def test_the_resumed_model_sees_the_same_conversation_as_before_the_pause() -> None:
    model = FunctionModel(desk_model)
    agent = desk(model=model)
    first, item = await paused(agent)
    before = model.requests[-1].messages
    await ReviewQueue(agent.store).approve(item.id, by="alice")

    await agent.resume(first.run_id)

    after = model.requests[-1].messages
    assert after[: len(before)] == before
    assert after[len(before)].tool_calls[0].name == "refund"  # the held turn, then its result
    quarantined = next(m for m in after if isinstance(m, ToolResultMessage) and m.name == "fetch_ticket")
    assert "UNTRUSTED DATA" in quarantined.content  # still quarantined after the replay


async def test_usage_and_cost_carry_over_the_pause() -> None:
    model = FunctionModel(desk_model, price=(1.0, 2.0))
    agent = desk(model=model)
    first, item = await paused(agent)
    await ReviewQueue(agent.store).approve(item.id, by="alice")

    result = await agent.resume(first.run_id)

    called = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert result.usage.requests == len(called) == 3
    assert result.usage.input_tokens == sum(e.tokens_in for e in called)
    assert result.usage.cost_usd == pytest.approx(sum(e.cost_usd for e in called))
    assert result.usage.cost_usd > first.usage.cost_usd


async def test_a_run_waiting_for_a_decision_cannot_be_resumed_yet(refunds: Path) -> None:
    agent = desk()
    first, item = await paused(agent)

    with pytest.raises(ResumeError, match=f"still waiting for a person: {item.id}.*keel review approve {item.id}"):
        await agent.resume(first.run_id)
    assert (await agent.store.get_run(first.run_id)).status is RunStatus.ESCALATED  # nothing changed
    assert refunded(refunds) == []


async def test_a_finished_run_an_unknown_run_and_another_agents_run_cannot_be_resumed() -> None:
    agent = desk(model=ScriptedModel([reply("hello")]))
    done = await agent.run("hi")

    with pytest.raises(ResumeError, match="has finished \\(completed"):
        await agent.resume(done.run_id)
    with pytest.raises(UnknownRunError):
        await agent.resume("run-nope")
    other = Agent("other", ScriptedModel([reply("x")]), store=agent.store)
    with pytest.raises(ResumeError, match="belongs to agent 'desk'"):
        await other.resume(done.run_id)


async def test_resuming_twice_never_repeats_the_action(refunds: Path) -> None:
    agent = desk()
    first, item = await paused(agent)
    await ReviewQueue(agent.store).approve(item.id, by="alice")
    await agent.resume(first.run_id)

    with pytest.raises(ResumeError, match="has finished"):
        await agent.resume(first.run_id)
    assert refunded(refunds) == ["A-1002 500.0"]


def test_two_processes_resuming_at_once_run_the_action_once(tmp_path: Path, refunds: Path) -> None:
    db = tmp_path / "keel.db"
    agent = desk(store=SQLiteStore(db))
    first, item = asyncio.run(paused(agent))
    ReviewQueue(agent.store).approve_sync(item.id, by="alice")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from escalation_agents import desk
        from keel.errors import ResumeError
        try:
            result = desk.with_store({str(db)!r}).resume_sync({first.run_id!r})
            print("resumed", result.status.value)
        except ResumeError as exc:
            print("refused", exc)
        """
    )
    env = {**os.environ, "KEEL_TEST_REFUNDS": str(refunds)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]

    said = [out.strip() for out, _ in outputs]
    assert sorted(s.split()[0] for s in said) == ["refused", "refused", "refused", "resumed"], outputs
    assert "resumed completed" in said
    assert refunded(refunds) == ["A-1002 500.0"]


def test_resume_after_the_process_was_killed_while_escalated(tmp_path: Path, refunds: Path) -> None:
    db = tmp_path / "keel.db"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(TESTS)!r})
        from escalation_agents import desk
        result = desk.with_store({str(db)!r}).run_sync("Please look at ticket T-1.")
        print(result.run_id, result.status.value, flush=True)
        time.sleep(120)  # a worker that would wait for the person: killed here
        """
    )
    env = {**os.environ, "KEEL_TEST_REFUNDS": str(refunds)}
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            run_id, status = proc.stdout.readline().split()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert status == "escalated" and proc.returncode == -signal.SIGKILL

    store = SQLiteStore(db)
    try:
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        ReviewQueue(store).approve_sync(item.id, by="alice")
        from escalation_agents import desk as same_agent

        result = same_agent.with_store(store).resume_sync(run_id)
    finally:
        store.close()
    assert result.status is RunStatus.COMPLETED
    assert refunded(refunds) == ["A-1002 500.0"]


async def test_an_approved_answer_goes_out_and_a_denied_one_is_rewritten() -> None:
    model = ScriptedModel([reply("Maybe a refund.", confidence=0.2), reply("No refund, sorry.", confidence=0.2)])
    agent = desk(model=model, escalation=Escalation(min_confidence=0.5))
    first = await agent.run("Refund?")
    [item] = await ReviewQueue(agent.store).pending()
    await ReviewQueue(agent.store).deny(item.id, by="carol", note="we never promise refunds")

    second = await agent.resume(first.run_id)  # the model writes another answer, also low: held again
    assert second.status is RunStatus.ESCALATED
    assert isinstance(model.requests[-1].messages[-1], UserMessage)
    assert "we never promise refunds" in model.requests[-1].messages[-1].content
    [again] = await ReviewQueue(agent.store).pending()
    assert again.arguments == {"answer": "No refund, sorry."}
    await ReviewQueue(agent.store).approve(again.id, by="carol")

    third = await agent.resume(first.run_id)
    assert third.status is RunStatus.COMPLETED and third.output == "No refund, sorry."
    assert kinds(third).count(EventKind.ESCALATED) == 2 and kinds(third).count(EventKind.REVIEW_DECIDED) == 2


async def test_an_answer_released_by_a_person_still_goes_through_the_later_guards() -> None:
    guards = [PIIGuard(mode="escalate", kinds=("email",)), PIIGuard(mode="redact", kinds=("phone",))]
    model = ScriptedModel([reply("Mail dana@example.com or call +1 415 555 0134")])
    agent = desk(model=model, guards=guards)
    first = await agent.run("Who?")
    [item] = await ReviewQueue(agent.store).pending()
    await ReviewQueue(agent.store).approve(item.id, by="dan")

    result = await agent.resume(first.run_id)

    assert result.status is RunStatus.COMPLETED
    assert "dana@example.com" in result.output and "555 0134" not in result.output


async def test_approved_spending_continues_and_denied_spending_ends_partial() -> None:
    def script():
        return ScriptedModel(
            [call("fetch_ticket", ticket_id="T")] * 3 + [reply("done")], usage=(1000, 100), price=(100.0, 100.0)
        )

    policy = Escalation(max_cost_usd=0.25, after_untrusted=None)
    no_loops = LoopDetector(max_visits=None, max_idle_steps=None)  # the script reads one ticket three times
    approving = desk(model=script(), escalation=policy, max_output_tokens=100, loop_detector=no_loops)
    first = await approving.run("Read.")
    [item] = await ReviewQueue(approving.store).pending()
    await ReviewQueue(approving.store).approve(item.id, by="erin")
    resumed = await approving.resume(first.run_id)
    assert resumed.status in (RunStatus.COMPLETED, RunStatus.ESCALATED)
    assert resumed.usage.cost_usd > first.usage.cost_usd

    denying = desk(model=script(), escalation=policy, max_output_tokens=100, loop_detector=no_loops)
    first = await denying.run("Read.")
    [item] = await ReviewQueue(denying.store).pending()
    await ReviewQueue(denying.store).deny(item.id, by="erin", note="too expensive")
    stopped = await denying.resume(first.run_id)
    assert stopped.status is RunStatus.PARTIAL
    assert "erin declined further spending past $0.25: too expensive" in stopped.report.reason
    assert stopped.usage.cost_usd == first.usage.cost_usd


async def test_one_decision_of_two_still_pending_blocks_the_resume_then_each_is_applied(refunds: Path) -> None:
    turn = calls(("refund", {"order_id": "A", "amount": 1}), ("refund", {"order_id": "B", "amount": 2}))
    model = ScriptedModel([turn, reply("handled")])
    agent = desk(model=model, escalation=Escalation(severity="high"))
    first = await agent.run("Refund A and B.")
    a, b = sorted(await ReviewQueue(agent.store).pending(), key=lambda i: i.arguments["order_id"])
    await ReviewQueue(agent.store).approve(a.id, by="f")
    with pytest.raises(ResumeError, match=b.id):
        await agent.resume(first.run_id)
    await ReviewQueue(agent.store).deny(b.id, by="f")

    result = await agent.resume(first.run_id)

    assert result.status is RunStatus.COMPLETED
    assert refunded(refunds) == ["A 1.0"]


async def test_resume_sync_and_the_idempotency_key_of_the_approved_call(refunds: Path) -> None:
    keys: list[str] = []

    @tool(side_effects=True)
    def pay(ctx: ToolContext, amount: float) -> str:
        """Pay out."""
        keys.append(ctx.idempotency_key)
        return "paid"

    model = ScriptedModel([call("fetch_ticket", ticket_id="T"), call("pay", amount=3), reply("paid")])
    agent = Agent("payer", model, tools=[fetch_ticket, pay], store=MemoryStore())
    first = await agent.run("Pay.")
    [item] = await ReviewQueue(agent.store).pending()
    await ReviewQueue(agent.store).approve(item.id, by="g")

    result = await asyncio.to_thread(agent.resume_sync, first.run_id)

    assert result.status is RunStatus.COMPLETED and len(keys) == 1
    [called] = [e for e in result.events if e.kind is EventKind.TOOL_CALLED and e.payload["tool"] == "pay"]
    assert called.payload["idempotency_key"] == keys[0]


def test_resume_sync_inside_a_running_loop_is_refused() -> None:
    async def inside() -> None:
        with pytest.raises(Exception, match="resume_sync\\(\\) cannot be called from a running event loop"):
            desk().resume_sync("run-x")

    asyncio.run(inside())


async def test_the_elapsed_time_before_the_pause_still_counts_after_it() -> None:
    agent = desk()
    first, item = await paused(agent)
    pause = next(e for e in first.events if e.kind is EventKind.ESCALATED).payload
    assert 0 <= pause["elapsed_s"] < 30
    await asyncio.sleep(0.01)
    await ReviewQueue(agent.store).approve(item.id, by="h")
    assert (await agent.resume(first.run_id)).status is RunStatus.COMPLETED


async def test_a_model_that_reuses_call_ids_still_gets_its_approved_call_run(refunds: Path) -> None:
    from keel.models import ModelRequest, ModelResponse, ToolCall

    def same_id_every_turn(request: ModelRequest) -> ModelResponse:
        results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
        if not results:
            return ModelResponse(tool_calls=(ToolCall("call_0", "fetch_ticket", '{"ticket_id": "T-1"}'),))
        if results[-1].name == "fetch_ticket":
            return ModelResponse(tool_calls=(ToolCall("call_0", "refund", '{"order_id": "B", "amount": 1}'),))
        return reply("done")

    agent = desk(model=FunctionModel(same_id_every_turn))
    first = await agent.run("Ticket T-1.")
    [item] = await ReviewQueue(agent.store).pending()
    await ReviewQueue(agent.store).approve(item.id, by="alice")

    result = await agent.resume(first.run_id)

    assert result.status is RunStatus.COMPLETED and refunded(refunds) == ["B 1.0"]
    ids = [c["id"] for e in result.events if e.kind is EventKind.MODEL_CALLED for c in e.payload["tool_calls"]]
    assert len(ids) == len(set(ids)) == 2  # the repeated id was renamed before it was journaled


async def test_two_held_calls_with_one_id_are_decided_separately(refunds: Path) -> None:
    from keel.models import ModelResponse, ToolCall

    turn = ModelResponse(
        tool_calls=(
            ToolCall("call_0", "refund", '{"order_id": "alice", "amount": 1}'),
            ToolCall("call_0", "refund", '{"order_id": "mallory", "amount": 1}'),
        )
    )
    agent = desk(model=ScriptedModel([turn, reply("ok")]), escalation=Escalation(severity="high"))
    first = await agent.run("Refund both.")
    items = {i.arguments["order_id"]: i for i in await ReviewQueue(agent.store).pending()}
    await ReviewQueue(agent.store).approve(items["alice"].id, by="x")
    await ReviewQueue(agent.store).deny(items["mallory"].id, by="x")

    await agent.resume(first.run_id)

    assert refunded(refunds) == ["alice 1.0"]


async def test_a_paused_and_resumed_run_ends_like_one_that_never_paused() -> None:
    keys: list[str] = []
    calls_made = [0]

    @tool(side_effects=True, trusted=True)
    async def pay(ctx: ToolContext, amount: float) -> str:
        """Pay; the first attempt fails."""
        calls_made[0] += 1
        attempt = calls_made[0]
        keys.append(ctx.idempotency_key)
        await asyncio.sleep(0)  # both calls of the turn are under way before the first fails
        if attempt == 1:
            raise ConnectionError("gateway reset")
        return "paid"

    @tool(severity="critical", trusted=True)
    def audit(note: str) -> str:
        """Record an audit note (critical: always approved first)."""
        return "audited"

    def script() -> ScriptedModel:
        twice = calls(("pay", {"amount": 5}), ("pay", {"amount": 5}))
        return ScriptedModel([twice, call("audit", note="n"), call("pay", amount=5), reply("done")])

    straight = Agent("payer", script(), tools=[pay, audit], store=MemoryStore(), escalation=Escalation(severity=None))
    plain = await straight.run("Pay.")
    plain_keys, keys[:], calls_made[0] = list(keys), [], 0

    paused_agent = Agent("payer", script(), tools=[pay, audit], store=MemoryStore())
    first = await paused_agent.run("Pay.")
    [item] = await ReviewQueue(paused_agent.store).pending()
    await ReviewQueue(paused_agent.store).approve(item.id, by="x")
    resumed = await paused_agent.resume(first.run_id)

    assert first.status is RunStatus.ESCALATED and resumed.status is plain.status is RunStatus.COMPLETED

    def pattern(ks: list[str]) -> list[int]:  # keys embed the run id: compare which calls share a key
        return [ks.index(k) for k in ks]

    assert pattern(keys) == pattern(plain_keys) == [0, 1, 0]  # the failed call's key goes to the next such call
    assert resumed.report.done == plain.report.done and resumed.report.not_done == plain.report.not_done
    assert resumed.usage.tool_calls == plain.usage.tool_calls == 4  # pay, pay, audit, pay


async def test_the_reviewer_sees_the_answer_as_it_would_go_out() -> None:
    model = ScriptedModel([reply("Write to john.smith@example.com", confidence=0.1)])
    agent = desk(model=model, escalation=Escalation(min_confidence=0.5))  # default guards: PII redacted
    await agent.run("Who?")

    [item] = await ReviewQueue(agent.store).pending()

    assert "john.smith@example.com" not in item.arguments["answer"] and "[email]" in item.arguments["answer"]
