"""Parallel tool calls: when the model asks for several tools in one turn, Keel runs them concurrently.

    python examples/parallel_tools.py
    keel run examples/parallel_tools.py:agent "How are ACME and GLOBEX doing?"

Async tools share the event loop; sync tools run in worker threads, so a slow one blocks neither the others
nor its own timeout. Each call still gets its own journal entry with its latency and outcome. A `FunctionModel`
stands in for the LLM: its first turn asks for all three tools at once, its second answers from their results.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from keel import Agent, EventKind, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.testing import FunctionModel, calls, reply

DELAY_S = 0.4  # what each tool "waits on the network"


@tool
async def get_stock_price(symbol: str) -> dict[str, object]:
    """Latest price of a stock (async tool)."""
    await asyncio.sleep(DELAY_S)
    return {"symbol": symbol, "price": {"ACME": 182.5, "GLOBEX": 41.2}[symbol]}


@tool
def get_headlines(topic: str) -> list[str]:
    """Today's headlines on a topic (sync tool: runs in a worker thread)."""
    time.sleep(DELAY_S)
    return [f"{topic.title()} stocks rally on strong earnings"]


def markets_model(request: ModelRequest) -> ModelResponse:
    results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if not results:  # one turn, three calls: they start together
        return calls(
            ("get_stock_price", {"symbol": "ACME"}),
            ("get_stock_price", {"symbol": "GLOBEX"}),
            ("get_headlines", {"topic": "industrials"}),
        )
    prices = [json.loads(m.content) for m in results if m.name == "get_stock_price" and not m.is_error]
    headlines = [h for m in results if m.name == "get_headlines" and not m.is_error for h in json.loads(m.content)]
    quoted = " and ".join(f"{p['symbol']} trades at {p['price']:.2f}" for p in prices)
    return reply(f"{quoted}. Headlines: {'; '.join(headlines)}.")


agent = Agent("markets", FunctionModel(markets_model), tools=[get_stock_price, get_headlines], store="memory://")


def main() -> int:
    result = agent.run_sync("How are ACME and GLOBEX doing today, and what's the news?")

    tool_events = [e for e in result.events if e.kind is EventKind.TOOL_CALLED]
    for event in tool_events:
        print(
            f"  {event.payload['tool']}({event.payload['arguments']}) -> {event.payload['outcome']} "
            f"in {event.latency_ms:.0f} ms"
        )
    tool_time = sum(e.latency_ms for e in tool_events) / 1000
    # From the journal: each event is stamped when its call ended, `latency_ms` after the call started.
    wall_time = max(e.ts for e in tool_events) - min(e.ts - e.latency_ms / 1000 for e in tool_events)
    print(f"status: {result.status.value}")
    print(f"answer: {result.output}")
    print(f"{len(tool_events)} tool calls: {tool_time:.2f} s of tool time in {wall_time:.2f} s of wall time")

    concurrent = wall_time < tool_time * 0.8
    print("the tool calls ran concurrently" if concurrent else "the tool calls ran one after another")
    return 0 if result.ok and concurrent else 1


if __name__ == "__main__":
    sys.exit(main())
