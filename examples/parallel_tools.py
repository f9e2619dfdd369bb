"""Parallel tool calls: when the model asks for several tools in one turn, Keel runs them concurrently.

    python examples/parallel_tools.py

Async tools share the event loop; sync tools run in worker threads, so a slow one blocks neither the others
nor its own timeout. Each call still gets its own journal entry with its latency and outcome.
"""

from __future__ import annotations

import asyncio
import sys
import time

from keel import Agent, EventKind, tool
from keel.testing import ScriptedModel, calls, reply

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


model = ScriptedModel(
    [
        # One turn, three calls: they start together.
        calls(
            ("get_stock_price", {"symbol": "ACME"}),
            ("get_stock_price", {"symbol": "GLOBEX"}),
            ("get_headlines", {"topic": "industrials"}),
        ),
        reply("ACME trades at 182.50 and GLOBEX at 41.20; industrials rallied on strong earnings."),
    ]
)
agent = Agent("markets", model, tools=[get_stock_price, get_headlines], store="memory://")

started = time.perf_counter()
result = agent.run_sync("How are ACME and GLOBEX doing today, and what's the news?")
elapsed = time.perf_counter() - started

tool_events = [e for e in result.events if e.kind is EventKind.TOOL_CALLED]
for event in tool_events:
    print(
        f"  {event.payload['tool']}({event.payload['arguments']}) -> {event.payload['outcome']} "
        f"in {event.latency_ms:.0f} ms"
    )
tool_time = sum(e.latency_ms for e in tool_events) / 1000
print(f"status: {result.status.value}")
print(f"answer: {result.output}")
print(f"{len(tool_events)} tool calls, {tool_time:.2f} s of tool time, whole run {elapsed:.2f} s")

concurrent = elapsed < tool_time * 0.8
print("the tool calls ran concurrently" if concurrent else "the tool calls ran one after another")
sys.exit(0 if result.ok and concurrent else 1)
