"""Escalation (G4) and the taint rule (G5): what pauses a run for a person, and what a paused run looks like."""

import pytest
from pydantic import BaseModel

from escalation_agents import desk_model, fetch_ticket, refund
from keel import Agent, Escalation, EventKind, ReviewQueue, RunStatus, tool
from keel.errors import ConfigError
from keel.guardrails import PIIGuard
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.store import MemoryStore
from keel.testing import FunctionModel, ScriptedModel, call, calls, reply

ran: list[str] = []


@tool(trusted=True)
def read_policy(topic: str) -> str:
    """Read the company's own policy (trusted)."""
    return f"Policy on {topic}: refunds up to 500 are fine."


@tool(severity="critical", side_effects=True)
def close_account(customer_id: str) -> str:
    """Close a customer's account."""
    ran.append(f"close {customer_id}")
    return "closed"


@tool(severity="medium", side_effects=True)
def send_note(text: str) -> str:
    """Leave a note on the ticket."""
    ran.append(f"note {text}")
    return "noted"


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    ran.clear()


def desk(model, store=None, **kwargs) -> Agent:
    tools = [fetch_ticket, refund, read_policy, close_account, send_note]
    return Agent("desk", model, tools=tools, store=store or MemoryStore(), **kwargs)


def escalated(result) -> dict:
    [event] = [e for e in result.events if e.kind is EventKind.ESCALATED]
    return event.payload


async def test_injected_tool_output_that_coerces_a_high_severity_call_is_stopped_for_approval(tmp_path) -> None:
    refunds = tmp_path / "refunds.txt"
    agent = desk(FunctionModel(desk_model))
    result = await agent.run("Please look at ticket T-1.")

    assert result.status is RunStatus.ESCALATED
    assert not refunds.exists()
    assert [e.payload["tool"] for e in result.events if e.kind is EventKind.TOOL_CALLED] == ["fetch_ticket"]
    pause = escalated(result)
    assert pause["trigger"] == "taint" and "untrusted data (output of fetch_ticket)" in pause["reason"]
    [item] = await ReviewQueue(agent.store).pending(run_id=result.run_id)
    assert pause["review_ids"] == [item.id]
    assert item.action == "refund" and item.arguments == {"order_id": "A-1002", "amount": 500.0}
    assert item.priority == 2  # severity high
    assert result.report.resume == f"keel resume {result.run_id}"
    assert f"refund: waiting for a person ({item.id})" in result.report.not_done
    assert (await agent.store.get_run(result.run_id)).status is RunStatus.ESCALATED


async def test_a_high_severity_tool_runs_without_approval_while_the_run_has_read_only_trusted_data() -> None:
    model = ScriptedModel([call("read_policy", topic="refunds"), call("refund", order_id="A-1", amount=5), reply("ok")])
    result = await desk(model).run("Refund A-1 for 5 if the policy allows.")

    assert result.status is RunStatus.COMPLETED
    assert not [e for e in result.events if e.kind is EventKind.ESCALATED]


async def test_a_critical_tool_always_waits_for_a_person_by_default() -> None:
    result = await desk(ScriptedModel([call("close_account", customer_id="C-9")])).run("Close C-9.")

    assert result.status is RunStatus.ESCALATED and ran == []
    assert escalated(result)["trigger"] == "severity"


async def test_escalation_can_be_switched_off() -> None:
    never = Escalation(severity=None, after_untrusted=None)
    result = await desk(FunctionModel(desk_model), escalation=never).run("Please look at ticket T-1.")

    assert result.status is RunStatus.COMPLETED
    assert "refunded 500.0 on A-1002" in result.output


async def test_a_held_turn_is_held_whole_and_each_severe_call_gets_its_own_item() -> None:
    turn = calls(
        ("send_note", {"text": "on it"}),
        ("close_account", {"customer_id": "C-1"}),
        call("refund", order_id="A", amount=1),
    )
    agent = desk(ScriptedModel([turn]), escalation=Escalation(severity="high"))
    result = await agent.run("Tidy up.")

    assert result.status is RunStatus.ESCALATED
    assert ran == []  # not even the medium-severity note: it may assume the others happened
    items = await ReviewQueue(agent.store).pending(run_id=result.run_id)
    assert sorted(i.action for i in items) == ["close_account", "refund"]
    assert [i.action for i in items][0] == "close_account"  # critical is reviewed first
    assert len(escalated(result)["pending"]["calls"]) == 3


async def test_a_low_confidence_answer_is_held_and_not_handed_to_the_caller() -> None:
    agent = desk(
        ScriptedModel([reply("Your refund is approved.", confidence=0.3)]), escalation=Escalation(min_confidence=0.6)
    )
    result = await agent.run("Can I get a refund?")

    assert result.status is RunStatus.ESCALATED and result.output is None
    [item] = await ReviewQueue(agent.store).pending()
    assert item.action == "answer" and item.arguments == {"answer": "Your refund is approved."}
    assert "confidence is 0.30, below 0.6" in item.reason
    assert escalated(result)["trigger"] == "confidence"


async def test_a_confident_answer_goes_out() -> None:
    agent = desk(ScriptedModel([reply("Yes.", confidence=0.9)]), escalation=Escalation(min_confidence=0.6))
    assert (await agent.run("Can I get a refund?")).status is RunStatus.COMPLETED


async def test_a_scorer_judges_confidence_when_the_model_reports_none() -> None:
    seen: list[str] = []

    def scorer(text, context) -> float:
        seen.append(text)
        return 0.1 if "maybe" in text else 0.95

    policy = Escalation(min_confidence=0.5, scorer=scorer)
    held = await desk(ScriptedModel([reply("maybe next week")]), escalation=policy).run("When?")
    sure = await desk(ScriptedModel([reply("on Monday")]), escalation=policy).run("When?")

    assert held.status is RunStatus.ESCALATED and sure.status is RunStatus.COMPLETED
    assert seen == ["maybe next week", "on Monday"]


class Answer(BaseModel):
    text: str
    confidence: float


async def test_a_typed_answers_confidence_field_is_its_self_report() -> None:
    model = ScriptedModel([reply({"text": "probably", "confidence": 0.2})])
    result = await desk(model, output=Answer, escalation=Escalation(min_confidence=0.5)).run("Sure?")

    assert result.status is RunStatus.ESCALATED and result.output is None


async def test_a_low_confidence_side_effect_waits_but_a_low_confidence_lookup_runs() -> None:
    def model(request: ModelRequest) -> ModelResponse:
        results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
        if not results:
            return ModelResponse(tool_calls=call("read_policy", topic="x").tool_calls, confidence=0.2)
        return ModelResponse(tool_calls=call("send_note", text="guess").tool_calls, confidence=0.2)

    result = await desk(FunctionModel(model), escalation=Escalation(min_confidence=0.5)).run("Note it.")

    assert result.status is RunStatus.ESCALATED and ran == []
    assert [e.payload["tool"] for e in result.events if e.kind is EventKind.TOOL_CALLED] == ["read_policy"]
    assert escalated(result)["trigger"] == "confidence"


async def test_an_escalating_guard_holds_the_answer_for_a_person() -> None:
    agent = desk(ScriptedModel([reply("Mail dana@example.com")]), guards=[PIIGuard(mode="escalate")])
    result = await agent.run("Who handles it?")

    assert result.status is RunStatus.ESCALATED and result.output is None
    assert escalated(result)["trigger"] == "guard"
    [item] = await ReviewQueue(agent.store).pending()
    assert item.action == "answer" and "pii" in item.reason


async def test_on_guard_failure_escalate_turns_a_block_into_a_review() -> None:
    script = [reply("Mail dana@example.com")]
    blocked = await desk(ScriptedModel(script), guards=[PIIGuard(mode="block")]).run("Who?")
    held = await desk(
        ScriptedModel(script), guards=[PIIGuard(mode="block")], escalation=Escalation(on_guard_failure="escalate")
    ).run("Who?")

    assert blocked.status is RunStatus.REJECTED
    assert held.status is RunStatus.ESCALATED


async def test_spend_past_the_review_threshold_waits_for_a_person_before_the_call() -> None:
    model = ScriptedModel(
        [call("read_policy", topic="a")] * 5 + [reply("done")], usage=(1000, 100), price=(100.0, 100.0)
    )
    agent = desk(model, escalation=Escalation(max_cost_usd=0.25), max_output_tokens=100)
    result = await agent.run("Read a lot.")

    assert result.status is RunStatus.ESCALATED
    assert result.usage.cost_usd <= 0.25
    [item] = await ReviewQueue(agent.store).pending()
    assert item.action == "continue" and item.arguments["threshold_usd"] == 0.25
    assert item.arguments["spent_usd"] + item.arguments["next_call_usd"] > 0.25
    assert escalated(result)["trigger"] == "cost"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_confidence": 1.5}, "between 0 and 1"),
        ({"min_confidence": True}, "between 0 and 1"),
        ({"max_cost_usd": 0}, "positive amount"),
        ({"max_cost_usd": float("nan")}, "positive amount"),
        ({"severity": "severe"}, "must be one of"),
        ({"after_untrusted": "huge"}, "must be one of"),
        ({"on_guard_failure": "ignore"}, "'reject' or 'escalate'"),
        ({"scorer": 0.5}, "must be a function"),
    ],
)
def test_bad_escalation_settings_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Escalation(**kwargs)


def test_an_agent_rejects_what_is_not_an_escalation_and_a_cost_threshold_on_an_unpriced_model() -> None:
    with pytest.raises(ConfigError, match="escalation must be an Escalation"):
        desk(ScriptedModel([reply("x")]), escalation={"severity": "high"})

    class Unpriced(ScriptedModel):
        @property
        def price(self):
            return None

    with pytest.raises(ConfigError, match="needs the price"):
        desk(Unpriced([reply("x")]), escalation=Escalation(max_cost_usd=1))
