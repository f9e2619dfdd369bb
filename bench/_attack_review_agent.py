"""The agent of the review attack: it pauses before a critical refund; ``keel resume`` imports it from here.

Every refund that really runs appends one line (the order id) to the file named by ``KEEL_ATTACK_EFFECTS``, so the
bench counts side effects across the threads, processes, CLI and dashboard that resume the run.
"""

from __future__ import annotations

import os
from pathlib import Path

from keel import Agent, Escalation, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.testing import FunctionModel, call, reply


@tool(severity="critical", side_effects=True, trusted=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an order (always waits for a person)."""
    effects = os.environ.get("KEEL_ATTACK_EFFECTS")
    if effects:
        with Path(effects).open("a") as file:
            file.write(f"{order_id}\n")
    return f"refunded {amount} on {order_id}"


def _decide(request: ModelRequest) -> ModelResponse:
    results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if not results:
        first = request.messages[0]
        order = str(getattr(first, "content", "")).rsplit(" ", 1)[-1]
        return call("refund", order_id=order, amount=25.0)
    return reply("declined by a reviewer" if results[-1].is_error else f"done: {results[-1].content}")


refunds = Agent(
    "refunds", FunctionModel(_decide), tools=[refund], escalation=Escalation(severity="critical"), guards=[]
)
"""Stores in ``KEEL_STORE`` unless given one (`Agent.with_store`)."""
