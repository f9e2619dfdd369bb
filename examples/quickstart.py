"""Quickstart: an agent with two tools and a typed answer, run offline.

    python examples/quickstart.py

The model here is a `ScriptedModel`: it plays a fixed script of turns, so this file runs without an API key and
gives the same result every time (use it in your own tests too). For a real model, pass a name instead, e.g.
``model="openai:gpt-4o-mini"`` (reads OPENAI_API_KEY), and drop the script.
"""

from __future__ import annotations

import sys

from pydantic import BaseModel

from keel import Agent, Budget, tool
from keel.testing import ScriptedModel, call, reply

# --- Tools: plain functions. The model sees a JSON schema built from the type hints and a description taken
# --- from the docstring; the arguments it sends are validated against that schema before the function runs.

FORECASTS = {"lisbon": {"summary": "Sunny", "high_c": 24.0}, "oslo": {"summary": "Light rain", "high_c": 14.0}}


@tool
def get_forecast(city: str) -> dict[str, object]:
    """Today's forecast for a city.

    Args:
        city: the city's name, such as "Lisbon".
    """
    return {"city": city.title(), **FORECASTS[city.lower()]}


@tool
def to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return round(celsius * 9 / 5 + 32, 1)


# --- Typed output: the final answer must validate against this model (Keel asks the model to correct it
# --- otherwise), and `result.output` is an instance of it.


class Forecast(BaseModel):
    city: str
    summary: str
    high_c: float
    high_f: float


# --- The script: what the model "decides" at each turn. A real model would produce these turns itself.
model = ScriptedModel(
    [
        call("get_forecast", city="Lisbon"),
        call("to_fahrenheit", celsius=24.0),
        reply(Forecast(city="Lisbon", summary="Sunny", high_c=24.0, high_f=75.2)),
    ],
    usage=(150, 25),  # tokens reported per turn (input, output)
    price=(0.15, 0.60),  # USD per million input / output tokens, so the cost is accounted like a real model's
)

agent = Agent(
    "weather",
    model,
    instructions="Answer weather questions with the tools. Give temperatures in Celsius and Fahrenheit.",
    tools=[get_forecast, to_fahrenheit],  # the allow-list: nothing else can run
    output=Forecast,
    budget=Budget(max_steps=5, max_tokens=5_000, max_cost_usd=0.01),  # hard limits for this run
    store="memory://",  # keep the journal in memory; the default is .keel/keel.db
)

result = agent.run_sync("What's the high in Lisbon today, in both units?")

print(f"status: {result.status.value}")
print(f"output: {result.output!r}")
usage = result.usage
print(f"usage:  {usage.total_tokens} tokens ({usage.input_tokens} in / {usage.output_tokens} out), ", end="")
print(f"{usage.requests} model calls, {usage.tool_calls} tool calls, ${usage.cost_usd:.6f}")
print("journal:")
for event in result.events:  # every step of the run, as recorded
    print(f"  #{event.seq} {event.kind.value}")

sys.exit(0 if result.ok else 1)
