"""What goes wrong, bounded: a hallucinated tool, then a run out of steps, then one out of tokens.

    python examples/budget_and_bad_tools.py

Neither an unknown tool nor an exhausted budget raises: the bad call is rejected and fed back to the model as
an error it can correct, and a budget that runs out ends the run with status PARTIAL, its best output so far and
a report of what was done and what was not.
"""

from __future__ import annotations

import dataclasses
import sys

from keel import Agent, Budget, EventKind, RunResult, RunStatus, tool
from keel.models import ModelResponse
from keel.testing import ScriptedModel, call

FARES = {"2025-07-01": 89, "2025-07-02": 74, "2025-07-03": 112}


@tool
def search_flights(origin: str, destination: str, date: str) -> dict[str, object]:
    """Find the cheapest fare for a route on a date (YYYY-MM-DD)."""
    return {"route": f"{origin}-{destination}", "date": date, "fare_eur": FARES.get(date)}


def show(title: str, result: RunResult) -> None:
    print(f"== {title}")
    print(f"status: {result.status.value}")
    print(f"output: {result.output}")
    print("report:")
    for line in str(result.report).splitlines():
        print(f"  {line}")
    rejected = [e for e in result.events if e.kind is EventKind.TOOL_REJECTED]
    for event in rejected:
        print(f"rejected call: {event.payload['tool']} -> {event.payload['reason']}")
    print()


def with_text(turn: ModelResponse, text: str) -> ModelResponse:
    """A tool-call turn in which the model also says something (it becomes the best partial output)."""
    return dataclasses.replace(turn, text=text)


# 1. The model calls a tool that does not exist, then keeps searching until the step budget stops it.
wandering = ScriptedModel(
    [
        call("book_flight", origin="LIS", destination="OSL", date="2025-07-01"),  # not on the allow-list
        call("search_flights", origin="LIS", destination="OSL", date="2025-07-01"),
        with_text(call("search_flights", origin="LIS", destination="OSL", date="2025-07-02"), "July 1 costs €89."),
        call("search_flights", origin="LIS", destination="OSL", date="2025-07-03"),  # never reached
    ]
)
steps_agent = Agent(
    "travel",
    wandering,
    tools=[search_flights],
    budget=Budget(max_steps=3),  # three model turns, then stop
    store="memory://",
)
by_steps = steps_agent.run_sync("Find the cheapest LIS-OSL flight in the first week of July.")
show("step budget", by_steps)

# 2. Each turn costs ~450 tokens; the budget is 1,000, so the third turn cannot be afforded. The check happens
#    *before* the call (worst case reserved), so the budget is never crossed.
thirsty = ScriptedModel(
    [
        with_text(call("search_flights", origin="LIS", destination="OSL", date="2025-07-01"), "Checking July 1."),
        with_text(call("search_flights", origin="LIS", destination="OSL", date="2025-07-02"), "July 1: €89."),
        call("search_flights", origin="LIS", destination="OSL", date="2025-07-03"),  # refused by the budget
    ],
    usage=(400, 50),
)
tokens_agent = Agent("travel", thirsty, tools=[search_flights], budget=Budget(max_tokens=1_000), store="memory://")
by_tokens = tokens_agent.run_sync("Find the cheapest LIS-OSL flight in the first week of July.")
show("token budget", by_tokens)
print(f"tokens used: {by_tokens.usage.total_tokens} of 1000")

expected = by_steps.status is RunStatus.PARTIAL and by_tokens.status is RunStatus.PARTIAL
sys.exit(0 if expected else 1)
