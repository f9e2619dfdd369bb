"""Agents whose runs fill a store the way a support team's would, for the dashboard's tests and screenshots.

Models are scripted (`ScriptedModel` with realistic token counts and list prices, reasons stated), so every
run is deterministic. `populate` records a mix: answered questions with lookups, a refund that waits for a person,
a flaky carrier API retried, a search that loops until the detector breaks it, a provider outage, a tool whose
output carries HTML, and a customer's email and card number that must never show in clear.

``refund_desk`` pauses at its refund (a ``critical`` tool) and is importable by ``keel resume``: the browser test
approves it from the page and the dashboard's resume completes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import escalation_agents
from keel import Agent, Budget, RetryPolicy, SpendLimit, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.recovery import LoopDetector
from keel.store import open_store
from keel.testing import FunctionModel, ScriptedModel, call, fail, reply

MINI = (0.15, 0.60)  # gpt-4o-mini list price, USD per million tokens (input, output)
LARGE = (2.50, 10.00)  # gpt-4o


@tool(trusted=True)
def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id, "status": "shipped", "carrier": "DHL", "email": "jane.doe@example.com"}


@tool(trusted=True)
def customer_profile(email: str) -> dict[str, str]:
    """A customer's profile."""
    return {"name": "Jane Doe", "email": email, "card": "4111 1111 1111 1111", "tier": "gold"}


_flaky: list[int] = []


@tool(trusted=True, retry=RetryPolicy(max_attempts=3, initial_delay_s=0.01, jitter=0))
def track_parcel(tracking: str) -> str:
    """The carrier's tracking API (fails once per run with a reset connection)."""
    _flaky.append(1)
    if len(_flaky) % 2 == 1:
        raise ConnectionError("carrier API: connection reset by peer")
    return f"{tracking}: out for delivery, ETA 14:00"


@tool(trusted=True)
def search_kb(query: str) -> str:
    """Search the knowledge base."""
    return "No article matches."


@tool(trusted=True)
def render_note(text: str) -> str:
    """Render a note as the CRM stores it (HTML)."""
    return f"<b>{text}</b><script>alert('xss')</script><img src=x onerror=alert(1)>"


refund = tool(side_effects=True, severity="critical", name="refund")(escalation_agents.refund.function)
"""Money leaves the company: a person approves it first. Records each refund in ``KEEL_TEST_REFUNDS``."""


def _why(turn: ModelResponse, reason: str) -> ModelResponse:
    return dataclasses.replace(turn, reason=reason)


def refund_model(request: ModelRequest) -> ModelResponse:
    """Decides from the request, so a run resumed in another process continues where it paused."""
    results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if not results:
        return _why(call("lookup_order", order_id="A-1002"), "check the order before refunding")
    if results[-1].name == "lookup_order":
        return _why(call("refund", order_id="A-1002", amount=49.9), "the parcel was lost: refund it in full")
    if results[-1].is_error:
        return reply("The refund was not made: a reviewer declined it.")
    return reply(f"Done: {results[-1].content}.")


refund_desk = Agent(
    "refund-desk",
    FunctionModel(refund_model),
    tools=[lookup_order, refund],
    limits=[SpendLimit(per_hour_usd=5.0, per_day_usd=40.0, scope="agent")],
)
"""Stores in ``KEEL_STORE``; pauses for a person at the refund."""


def _support(index: int) -> Agent:
    script = [
        _why(call("lookup_order", order_id=f"A-{1000 + index}"), "the customer asks where order A-1000 is"),
        _why(call("customer_profile", email="jane.doe@example.com"), "gold customers get a callback offer"),
        reply(f"Order A-{1000 + index} has shipped with DHL; we will call Jane back today."),
    ]
    return Agent(
        "support",
        ScriptedModel(script, usage=[(820, 46), (1240, 38), (1610, 64)], price=MINI, name="openai:gpt-4o-mini"),
        tools=[lookup_order, customer_profile],
        limits=[
            SpendLimit(per_hour_usd=2.0, per_day_usd=20.0, scope="agent"),
            SpendLimit(per_hour_usd=10, per_day_usd=100, scope="global"),
        ],
    )


def _tracking() -> Agent:
    script = [
        _why(call("track_parcel", tracking="JD0146"), "the carrier knows the delivery time"),
        reply("Out for delivery, ETA 14:00."),
    ]
    return Agent(
        "tracking",
        ScriptedModel(script, usage=[(640, 30), (900, 22)], price=MINI, name="openai:gpt-4o-mini"),
        tools=[track_parcel],
    )


def _research() -> Agent:
    script = [_why(call("search_kb", query="warranty for refurbished phones"), "policy questions start in the KB")] * 6
    return Agent(
        "research",
        ScriptedModel(
            [*script, reply("I could not find the warranty policy.")],
            usage=(2100, 60),
            price=LARGE,
            name="openai:gpt-4o",
        ),
        tools=[search_kb],
        loop_detector=LoopDetector(max_visits=2),
        budget=Budget(max_steps=8),
    )


def _outage() -> Agent:
    return Agent(
        "research",
        ScriptedModel(
            [fail("upstream provider returned 500 Internal Server Error")], price=LARGE, name="openai:gpt-4o"
        ),
    )


def _crm() -> Agent:
    script = [_why(call("render_note", text="Called the customer"), "log the call in the CRM"), reply("Logged.")]
    return Agent(
        "support",
        ScriptedModel(script, usage=[(500, 20), (700, 10)], price=MINI, name="openai:gpt-4o-mini"),
        tools=[render_note],
    )


async def populate(store_url: str, *, rounds: int = 1) -> list[str]:
    """Record `rounds` of the mix in the store at `store_url`; returns the run ids, in order."""
    store = open_store(store_url)
    run_ids: list[str] = []

    async def run(agent: Agent, task: str) -> None:
        run_ids.append((await agent.with_store(store).run(task)).run_id)

    try:
        for index in range(rounds):
            await run(_support(index), f"Where is my order A-{1000 + index}? — jane.doe@example.com")
            await run(_tracking(), "When does parcel JD0146 arrive?")
            await run(_crm(), "Log the callback")
            if index % 3 == 0:
                await run(_research(), "What is the warranty on refurbished phones?")
                await run(_outage(), "Summarize the returns policy")
        await run(refund_desk, "Parcel A-1002 was lost: refund the customer")
    finally:
        store.close()
    return run_ids


def populate_sync(store_url: str, *, rounds: int = 1) -> list[str]:
    """`populate` from synchronous code, on a thread of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, populate(store_url, rounds=rounds)).result()
