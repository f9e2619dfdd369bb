"""The four production failures the article opens with, replayed on the support desk, each stopped by Keel.

Each week's model is scripted to misbehave the way a real one did (`keel.testing.ScriptedModel`): the demo says
so. Everything else is real: the tools read the bundled dataset, the budget, the spending limits, the loop
detector, the review queue and the journal are Keel's own, and the store is the one the demo writes to.

- Week 1: a model calls a tool that does not exist, and keeps trying.
- Week 2: a model keeps adding steps to a three-step task.
- Week 3: a model whose calls would cost hundreds of dollars.
- Week 4: only the high-severity action (a refund) waits for a person; everything else runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from keel.agent import Agent
from keel.budget import Budget
from keel.cost.limits import SpendLimit
from keel.demo.support import INSTRUCTIONS, SupportDesk, support_tools
from keel.guardrails.escalation import Escalation
from keel.models.base import ModelResponse
from keel.recovery.loop import LoopDetector
from keel.store.base import Store
from keel.testing import ScriptedModel, call, reply

__all__ = ["FRONTIER_PRICE", "Week", "week_four", "week_one", "week_three", "week_two"]

FRONTIER_PRICE = (15.0, 75.0)
"""USD per million input/output tokens of week 3's imaginary frontier model (the most expensive list prices)."""


@dataclass(frozen=True)
class Week:
    """One replayed failure: what went wrong in production, the agent that will do it again, and its task."""

    title: str
    story: str
    """What happened in production, in the article's words."""
    agent: Agent
    task: str
    session_id: str
    would_cost_usd: float = 0.0
    """What the scripted model's calls would have cost had nothing stopped them (week 3)."""


def _why(turn: ModelResponse, reason: str) -> ModelResponse:
    return dataclasses.replace(turn, reason=reason)


def week_one(desk: SupportDesk, store: Store, session_id: str) -> Week:
    """A hallucinated tool, retried forever: rejected against the registry, fed back, bounded, loop broken."""
    ghost = _why(call("check_warehouse_stock", sku="BTS-W38"), "The warehouse will know where the boots are.")
    model = ScriptedModel([ghost] * 12 + [reply("I could not check the warehouse.")], name="scripted:week-1")
    agent = Agent("desk-week-1", model, instructions=INSTRUCTIONS, tools=support_tools(desk), store=store,
                  budget=Budget(max_steps=12, max_tool_rejections=3))  # fmt: skip
    story = (
        "The agent called a tool that did not exist, got an error, and called it again — in a loop that ran until "
        "someone noticed the bill."
    )
    return Week("Week 1 · a tool that does not exist, retried forever", story, agent,
                "Where are the boots of order A-1002 right now?", session_id)  # fmt: skip


def week_two(desk: SupportDesk, store: Store, session_id: str) -> Week:
    """A 47-step plan for a 3-step task: stopped by the loop detector and the step budget, with a best effort."""
    steps = [
        _why(call("get_order", order_id="A-1002"), "Step 1: the order."),
        _why(call("find_customer", email="dana@example.com"), "Step 2: the customer."),
        _why(call("list_orders", customer_id="C-100"), "Step 3: the customer's other orders."),
        _why(call("list_orders", customer_id="C-100"), "Step 4: re-check the orders, to be thorough."),
        _why(call("list_orders", customer_id="C-100"), "Step 5 of 47: and once more, in case something changed."),
    ]
    summary = reply(
        "Order A-1002 is delayed: held at the Leipzig hub after a weather disruption, back in transit since June 5, "
        "now expected on June 9 (DHL JD014600006281234567)."
    )
    model = ScriptedModel([*steps, summary], name="scripted:week-2")
    agent = Agent("desk-week-2", model, instructions=INSTRUCTIONS, tools=support_tools(desk), store=store,
                  budget=Budget(max_steps=10), loop_detector=LoopDetector(max_visits=2))  # fmt: skip
    story = "Asked a three-step question, the agent wrote a 47-step plan and started working through it."
    return Week("Week 2 · a 47-step plan for a 3-step task", story, agent,
                "Is order A-1002 late, and when will it arrive?", session_id)  # fmt: skip


def week_three(desk: SupportDesk, store: Store, session_id: str) -> Week:
    """Hundreds of dollars on one request: the budget and the hourly limit refuse calls before money is spent."""
    usage = (150_000, 4_000)  # every turn re-sends a 150k-token context: the whole order history, again
    turns = [_why(call("list_orders", customer_id="C-100"), "Re-read the full history first.")] * 40
    model = ScriptedModel(turns, usage=usage, price=FRONTIER_PRICE, name="scripted:frontier-xl")
    per_call = (usage[0] * FRONTIER_PRICE[0] + usage[1] * FRONTIER_PRICE[1]) / 1_000_000
    agent = Agent(
        "desk-week-3",
        model,
        instructions=INSTRUCTIONS,
        tools=support_tools(desk),
        store=store,
        budget=Budget(max_cost_usd=5.00, max_steps=50),
        limits=[SpendLimit(per_hour_usd=6.00, scope="session")],
        loop_detector=LoopDetector(max_visits=50, max_idle_steps=50),  # let the money bounds do the stopping
    )
    story = "One request to the most expensive model, with a context that grew every turn, cost $2,400."
    return Week("Week 3 · $2,400 on one request", story, agent, "Summarize Dana's order history.", session_id,
                would_cost_usd=per_call * len(turns))  # fmt: skip


def week_four(desk: SupportDesk, store: Store, session_id: str) -> Week:
    """Only the refund waits for a person: lookups run, the refund pauses, a person approves, it runs once."""
    turns = [
        _why(call("get_order", order_id="A-1002"), "Check the order before refunding."),
        _why(call("find_customer", email="dana@example.com"), "Confirm it is Dana's order."),
        _why(call("refund", order_id="A-1002", amount=14.98), "Refund the socks: the customer asked for it."),
        reply("Done: 14.98 USD refunded for the socks of order A-1002."),
    ]
    model = ScriptedModel(turns, name="scripted:week-4")
    agent = Agent("desk-week-4", model, instructions=INSTRUCTIONS, tools=support_tools(desk), store=store,
                  escalation=Escalation(severity="high", after_untrusted=None))  # fmt: skip
    story = "To be safe, the team reviewed every single action by hand — and the agent was no faster than a person."
    task = "I'm dana@example.com: please refund the socks from order A-1002, I don't need them."
    return Week("Week 4 · a person for every action", story, agent, task, session_id)
