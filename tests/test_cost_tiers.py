"""Model tiering (C1): the cheapest tier does the work, and a turn it gets wrong goes one tier up, journaled."""

import pytest
from pydantic import BaseModel

from keel import Agent, Budget, tool
from keel.cost.tiers import ModelTiers
from keel.errors import ConfigError
from keel.journal import EventKind, Phase
from keel.store import MemoryStore
from keel.testing import ScriptedModel, call, reply

SMALL_PRICE, LARGE_PRICE = (0.15, 0.60), (2.50, 10.00)


@tool
def get_order(order_id: str) -> str:
    """Look up an order."""
    return f"{order_id}: shipped"


@tool(side_effects=True, severity="critical")
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


def tiers(small: list, large: list, **options: object) -> ModelTiers:
    return ModelTiers(
        small=ScriptedModel(small, price=SMALL_PRICE, name="test:small"),
        large=ScriptedModel(large, price=LARGE_PRICE, name="test:large"),
        **options,  # type: ignore[arg-type]
    )


def models_called(result) -> list[str]:
    return [e.payload["model"] for e in result.events if e.kind is EventKind.MODEL_CALLED]


async def test_work_runs_on_the_small_tier_and_is_charged_at_its_price() -> None:
    agent = Agent("a", tiers([call("get_order", order_id="A1"), reply("shipped")], []), tools=[get_order],
                  store=MemoryStore())  # fmt: skip
    result = await agent.run("Where is A1?")
    assert result.output == "shipped" and models_called(result) == ["test:small", "test:small"]
    calls = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert calls[0].payload["tier"] == "small" and calls[0].payload["tier_reason"] == "execution runs on small"
    assert result.usage.cost_usd == pytest.approx(2 * (100 * 0.15 + 20 * 0.60) / 1e6)
    started = result.events[0].payload
    assert started["tiers"] == {
        "small": {"model": "test:small", "price": [0.15, 0.60]},
        "large": {"model": "test:large", "price": [2.50, 10.00]},
    }


async def test_an_invalid_tool_call_goes_one_tier_up_then_the_next_step_drops_back() -> None:
    small = [call("get_ordr", order_id="A1"), reply("A1 shipped")]
    large = [call("get_order", order_id="A1")]
    result = await Agent("a", tiers(small, large), tools=[get_order], store=MemoryStore()).run("Where is A1?")
    assert result.output == "A1 shipped"
    assert models_called(result) == ["test:small", "test:large", "test:small"]
    (up,) = [e for e in result.events if e.kind is EventKind.FALLBACK_USED]
    assert (up.payload["tier"], up.payload["trigger"], up.payload["to"]) == ("large", "invalid_tool_call", "test:large")
    assert "Unknown tool 'get_ordr'" in up.payload["reason"]
    small_cost, large_cost = (100 * 0.15 + 20 * 0.60) / 1e6, (100 * 2.5 + 20 * 10.0) / 1e6
    assert result.usage.cost_usd == pytest.approx(2 * small_cost + large_cost)  # the failed call stays charged


class Order(BaseModel):
    order_id: str
    status: str


async def test_an_answer_off_its_schema_is_corrected_by_the_larger_tier() -> None:
    small = [reply("it shipped")]
    large = [reply({"order_id": "A1", "status": "shipped"})]
    result = await Agent("a", tiers(small, large), output=Order, store=MemoryStore()).run("Status of A1?")
    assert result.output == Order(order_id="A1", status="shipped")
    assert models_called(result) == ["test:small", "test:large"]
    assert [e.payload["trigger"] for e in result.events if e.kind is EventKind.FALLBACK_USED] == ["invalid_answer"]


async def test_a_low_confidence_answer_is_asked_again_one_tier_up() -> None:
    small = [reply("maybe A1 shipped", confidence=0.3)]
    large = [reply("A1 shipped on Monday", confidence=0.95)]
    result = await Agent("a", tiers(small, large, min_confidence=0.7), store=MemoryStore()).run("Status of A1?")
    assert result.output == "A1 shipped on Monday" and models_called(result) == ["test:small", "test:large"]
    verdicts = [
        e.payload
        for e in result.events
        if e.kind is EventKind.GUARD_VERDICT and e.payload["guard"] == "tier_confidence"
    ]
    assert len(verdicts) == 1 and "0.30" in verdicts[0]["detail"]


async def test_after_repeated_failures_the_run_stays_on_the_larger_tier() -> None:
    small = [call("nope"), call("nope")]
    large = [call("get_order", order_id="A1"), call("get_order", order_id="A2"), reply("both shipped")]
    agent = Agent("a", tiers(small, large, sticky_after=2), tools=[get_order], store=MemoryStore())
    result = await agent.run("A1 and A2?")
    # small fails, large fixes it; back on small, which fails again: the second escalation sticks
    assert models_called(result) == ["test:small", "test:large", "test:small", "test:large", "test:large"]
    last = [e for e in result.events if e.kind is EventKind.MODEL_CALLED][-1].payload
    assert last["tier_reason"].startswith("kept on large")


async def test_escalations_are_bounded_by_the_tier_map() -> None:
    small = [call("nope"), call("nope"), reply("gave up")]
    large = [call("get_order", order_id="A1")]
    agent = Agent("a", tiers(small, large, max_escalations=1, sticky_after=5), tools=[get_order], store=MemoryStore())
    result = await agent.run("A1?")
    assert len([e for e in result.events if e.kind is EventKind.FALLBACK_USED]) == 1
    assert models_called(result) == ["test:small", "test:large", "test:small", "test:small"]


async def test_a_top_tier_failure_is_not_escalated_further() -> None:
    agent = Agent(
        "a", tiers([], [call("nope"), reply("done")], execution="large"), tools=[get_order], store=MemoryStore()
    )
    result = await agent.run("go")
    assert models_called(result) == ["test:large", "test:large"]
    assert not [e for e in result.events if e.kind is EventKind.FALLBACK_USED]


async def test_the_best_effort_answer_goes_to_the_small_tier() -> None:
    small = [reply("what I found: A1 shipped")]
    large = [call("get_order", order_id="A1"), call("get_order", order_id="A2")]
    agent = Agent("a", tiers(small, large, execution="large"), tools=[get_order], budget=Budget(max_steps=2),
                  store=MemoryStore())  # fmt: skip
    result = await agent.run("A1 and A2?")
    calls = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert calls[-1].phase is Phase.SUMMARIZATION and calls[-1].payload["model"] == "test:small"
    assert result.output == "what I found: A1 shipped"


async def test_a_resumed_run_continues_on_the_tier_it_had_reached(memory_store: MemoryStore) -> None:
    def agent(small: list, large: list) -> Agent:
        return Agent("a", tiers(small, large, sticky_after=1), tools=[get_order, refund], store=memory_store)

    paused = await agent([call("nope")], [call("refund", order_id="A1")]).run("Refund A1")
    assert paused.status.value == "escalated"
    (item,) = await memory_store.list_reviews(status="pending")
    from keel import ReviewQueue

    await ReviewQueue(memory_store).approve(item.id, by="ops")
    resumed = await agent([], [reply("refunded")]).resume(paused.run_id)
    assert resumed.output == "refunded"
    assert models_called(resumed)[-1] == "test:large"  # sticky after one escalation, also after resume


def test_bad_tier_maps_are_refused() -> None:
    small, large = ScriptedModel([], name="test:small"), ScriptedModel([], name="test:large")
    with pytest.raises(ConfigError, match="needs a large model"):
        ModelTiers(small=small, large=None)
    with pytest.raises(ConfigError, match="unknown tier 'medium' for execution"):
        ModelTiers(small=small, large=large, execution="medium")
    with pytest.raises(ConfigError, match="unknown tier 'huge'"):
        ModelTiers(small=small, large=large, phases={"planning": "huge"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="unknown phase 'thinking'"):
        ModelTiers(small=small, large=large, phases={"thinking": "large"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="min_confidence"):
        ModelTiers(small=small, large=large, min_confidence=1.5)
    three = ModelTiers(small=small, large=large, medium=ScriptedModel([], name="test:medium"))
    assert [t.name for t in three.tiers] == ["small", "medium", "large"]
    assert three.for_phase(Phase.PLANNING).name == "large" and three.for_phase(Phase.ROUTING).name == "small"


class Unpriced(ScriptedModel):
    @property
    def price(self) -> None:  # type: ignore[override]
        return None


def test_money_bounds_need_every_tier_priced() -> None:
    unpriced = ModelTiers(small=ScriptedModel([], price=SMALL_PRICE), large=Unpriced([], name="test:no-price"))
    with pytest.raises(ConfigError, match="test:no-price"):
        Agent("a", unpriced, budget=Budget(max_cost_usd=1.0))


async def test_a_correction_never_goes_to_a_cheaper_tier_than_the_turn_it_corrects() -> None:
    medium = ScriptedModel([reply("it shipped")], price=(1.0, 4.0), name="test:medium")
    three = ModelTiers(
        small=ScriptedModel([], price=SMALL_PRICE, name="test:small"),
        medium=medium,
        large=ScriptedModel([reply({"order_id": "A1", "status": "shipped"})], price=LARGE_PRICE, name="test:large"),
        execution="medium",
    )
    result = await Agent("a", three, output=Order, store=MemoryStore()).run("Status of A1?")
    assert models_called(result) == ["test:medium", "test:large"]  # validation runs on small, but not a correction

    top = tiers([], [reply("it shipped"), reply({"order_id": "A1", "status": "shipped"})], execution="large")
    result = await Agent("a", top, output=Order, store=MemoryStore()).run("Status of A1?")
    assert models_called(result) == ["test:large", "test:large"]
