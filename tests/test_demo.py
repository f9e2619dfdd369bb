import json

import pytest

from keel import EventKind, RunStatus, ToolContext
from keel.demo import DEMO_TASK, SupportDesk, build_agent, scripted_model, support_tools
from keel.store import MemoryStore
from keel.testing import ScriptedModel, call, reply


def context(key: str) -> ToolContext:
    return ToolContext(
        run_id="run-test",
        call_id="call_1",
        idempotency_key=key,
        tool_name="refund",
        agent="support-desk",
        session_id=None,
        attempt=1,
        store=MemoryStore(),
    )


def tools_of(desk: SupportDesk):
    return {t.name: t for t in support_tools(desk)}


def tool_events(result, name: str):
    return [e for e in result.events if e.kind is EventKind.TOOL_CALLED and e.payload["tool"] == name]


def test_the_bundled_dataset_loads_from_the_package() -> None:
    desk = SupportDesk.load()
    assert desk.orders["A-1002"]["status"] == "delayed"
    assert all(o["customer_id"] in desk.customers for o in desk.orders.values())


async def test_demo_run_completes_with_real_lookups_and_states_only_looked_up_facts() -> None:
    desk = SupportDesk.load()
    result = await build_agent(store=MemoryStore(), desk=desk).run(DEMO_TASK)

    assert result.status is RunStatus.COMPLETED
    [lookup] = tool_events(result, "get_order")
    [verify] = tool_events(result, "find_customer")
    assert lookup.payload["outcome"] == verify.payload["outcome"] == "ok"
    order = json.loads(lookup.payload["result"])
    customer = json.loads(verify.payload["result"])
    assert order["customer_id"] == customer["id"]
    for fact in (order["promised_by"], order["expected_on"], order["tracking"], order["carrier"], f"{order['total']}"):
        assert fact in result.output
    assert result.usage.requests == 3 and result.usage.tool_calls == 2


def test_tool_severities_and_side_effects() -> None:
    tools = tools_of(SupportDesk.load())
    assert list(tools) == ["get_order", "find_customer", "list_orders", "refund"]
    assert tools["refund"].severity == "high" and tools["refund"].side_effects
    assert "ctx" not in tools["refund"].parameters["properties"]
    assert all(t.severity == "low" and not t.side_effects for n, t in tools.items() if n != "refund")


def test_refund_with_the_same_idempotency_key_refunds_once() -> None:
    desk = SupportDesk.load()
    refund = tools_of(desk)["refund"]

    first = refund(context("key-1"), "A-1002", 20.0)
    again = refund(context("key-1"), "A-1002", 20.0)

    assert again == {**first, "duplicate": True}
    assert len(desk.refunds) == 1
    assert desk.refunded("A-1002") == 20.0
    other = refund(context("key-2"), "A-1002", 20.0)  # a new key is a new refund
    assert other["refund_id"] != first["refund_id"]
    assert desk.refunded("A-1002") == 40.0


def test_refunds_cannot_exceed_what_is_left_of_the_total() -> None:
    desk = SupportDesk.load()
    refund = tools_of(desk)["refund"]
    refund(context("key-1"), "A-1002", 80.0)
    with pytest.raises(ValueError, match="only 9.97"):
        refund(context("key-2"), "A-1002", 10.0)
    with pytest.raises(ValueError, match="positive"):
        refund(context("key-3"), "A-1002", 0)
    with pytest.raises(LookupError, match="no order"):
        refund(context("key-4"), "Z-1", 1.0)
    assert desk.refunded("A-1002") == 80.0


async def test_refund_above_the_order_total_is_an_error_for_the_model_not_an_exception() -> None:
    desk = SupportDesk.load()
    model = ScriptedModel(
        [call("refund", order_id="A-1002", amount=500.0), reply("I can refund at most 89.97 USD on A-1002.")]
    )
    result = await build_agent(model, MemoryStore(), desk=desk).run("Refund 500 on A-1002")

    assert result.status is RunStatus.COMPLETED
    [event] = tool_events(result, "refund")
    assert event.payload["outcome"] == "error"
    assert "only 89.97" in event.payload["error"]
    assert event.payload["idempotency_key"]
    assert desk.refunds == {}
    assert "only 89.97" in model.requests[1].messages[-1].content  # the model was told why


async def test_lookups_of_unknown_records_are_errors_for_the_model() -> None:
    model = ScriptedModel(
        [call("get_order", order_id="Z-9"), call("find_customer", email="nobody@example.com"), reply("Not found.")]
    )
    result = await build_agent(model, MemoryStore()).run("Where is Z-9?")
    assert result.status is RunStatus.COMPLETED
    errors = [e.payload["error"] for e in result.events if e.kind is EventKind.TOOL_CALLED]
    assert "no order 'Z-9'" in errors[0]
    assert "no customer" in errors[1]


def test_list_orders_most_recent_first() -> None:
    orders = tools_of(SupportDesk.load())["list_orders"]("C-101")
    assert [o["id"] for o in orders] == ["A-1003", "A-1005"]


def test_scripted_model_is_fresh_each_time() -> None:
    assert scripted_model() is not scripted_model()
    assert build_agent(store=MemoryStore()).model is not build_agent(store=MemoryStore()).model


def test_ids_are_matched_whatever_their_case_or_spacing() -> None:
    desk = SupportDesk.load()
    assert desk.orders_of(" c-100 ") == desk.orders_of("C-100")
    assert desk.order("a-1002")["id"] == "A-1002"
    assert desk.customer_by_email(" Dana@Example.com ")["id"] == "C-100"
