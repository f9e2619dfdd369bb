"""What goes wrong, bounded: a hallucinated tool, then a run out of steps, then one out of tokens.

    python examples/budget_and_bad_tools.py
    keel run examples/budget_and_bad_tools.py:steps_agent "Cheapest LIS-OSL flight in early July?"

Neither an unknown tool nor an exhausted budget raises: the bad call is rejected and fed back to the model as
an error it can correct, and a budget that runs out ends the run with status PARTIAL, its best output so far and
a report of what was done and what was not. `FunctionModel`s stand in for the LLMs: one first calls a tool it
was never given, and both search one date per turn, saying the cheapest fare found so far, before they answer.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from keel import Agent, Budget, EventKind, RunResult, RunStatus, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.testing import FunctionModel, call, reply

FARES = {"2025-07-01": 89, "2025-07-02": 74, "2025-07-03": 112}


@tool
def search_flights(origin: str, destination: str, date: str) -> dict[str, object]:
    """Find the cheapest fare for a route on a date (YYYY-MM-DD)."""
    return {"route": f"{origin}-{destination}", "date": date, "fare_eur": FARES.get(date)}


def search_date_by_date(request: ModelRequest) -> ModelResponse:
    """Search the next date not searched yet, saying the cheapest fare so far; answer once every date is known."""
    found = [
        json.loads(m.content)
        for m in request.messages
        if isinstance(m, ToolResultMessage) and m.name == "search_flights" and not m.is_error
    ]
    fares = {f["date"]: f["fare_eur"] for f in found}
    best = min(fares, key=fares.__getitem__, default=None)
    summary = None if best is None else f"Cheapest so far: {best} at €{fares[best]}."
    remaining = [date for date in FARES if date not in fares]
    if not remaining:
        return reply(f"The cheapest is {best} at €{fares[best]}.")
    turn = call("search_flights", origin="LIS", destination="OSL", date=remaining[0])
    return turn if summary is None else dataclasses.replace(turn, text=summary)  # the text: best output so far


def book_first(request: ModelRequest) -> ModelResponse:
    """Like `search_date_by_date`, but its first move is a tool the agent does not have."""
    if not any(isinstance(m, ToolResultMessage) for m in request.messages):
        return call("book_flight", origin="LIS", destination="OSL", date="2025-07-01")  # not on the allow-list
    return search_date_by_date(request)


# 1. The model calls a tool that does not exist, then searches until the step budget stops it.
steps_agent = Agent(
    "travel",
    FunctionModel(book_first),
    tools=[search_flights],
    budget=Budget(max_steps=3),  # three model turns, then stop
    store="memory://",
)

# 2. A turn costs 200-600 tokens, more as the results pile up: 800 pay for two turns, not a third. The check
#    happens *before* each call (its input counted, room for its output required), so the budget is never crossed.
MAX_TOKENS = 800
tokens_agent = Agent(
    "travel",
    FunctionModel(search_date_by_date),
    tools=[search_flights],
    budget=Budget(max_tokens=MAX_TOKENS),
    store="memory://",
)


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


TASK = "Find the cheapest LIS-OSL flight in the first week of July."


def main() -> int:
    by_steps = steps_agent.run_sync(TASK)
    show("step budget", by_steps)
    by_tokens = tokens_agent.run_sync(TASK)
    show("token budget", by_tokens)
    print(f"tokens used: {by_tokens.usage.total_tokens} of {MAX_TOKENS}")
    return 0 if by_steps.status is RunStatus.PARTIAL and by_tokens.status is RunStatus.PARTIAL else 1


if __name__ == "__main__":
    sys.exit(main())
