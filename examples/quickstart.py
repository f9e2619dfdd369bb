"""Quickstart: an agent with two tools and a typed answer, run offline.

    python examples/quickstart.py
    keel run examples.quickstart:agent "What's the high in Lisbon today?"

The model here is a `FunctionModel`: a plain function stands in for the LLM, deciding each turn from the
conversation so far, so this file runs without an API key and gives the same result every time (use one in your
own tests too). It knows only Lisbon and Oslo. For a real model, pass a name instead, e.g.
``model="openai:gpt-4o-mini"`` (reads OPENAI_API_KEY), and drop `weather_model`.

Importing this module defines `agent` and runs nothing, so `keel run` (or your own code) can run it.
"""

from __future__ import annotations

import json
import sys

from pydantic import BaseModel

from keel import Agent, Budget, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage, UserMessage
from keel.testing import FunctionModel, call, reply

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


# --- The stand-in for an LLM: what it "decides" at each turn, from the question and the tool results so far.
def weather_model(request: ModelRequest) -> ModelResponse:
    question = next(m.content for m in request.messages if isinstance(m, UserMessage)).lower()
    results = {m.name: m.content for m in request.messages if isinstance(m, ToolResultMessage) and not m.is_error}
    if "get_forecast" not in results:
        city = next((name for name in FORECASTS if name in question), None)
        if city is None:
            return reply("I only have forecasts for Lisbon and Oslo.")  # not a Forecast: the run cannot complete
        return call("get_forecast", city=city.title())
    forecast = json.loads(results["get_forecast"])
    if "to_fahrenheit" not in results:
        return call("to_fahrenheit", celsius=forecast["high_c"])
    return reply(Forecast(**forecast, high_f=float(results["to_fahrenheit"])))


agent = Agent(
    "weather",
    FunctionModel(weather_model, price=(0.15, 0.60)),  # USD per million input / output tokens, accounted as usual
    instructions="Answer weather questions with the tools. Give temperatures in Celsius and Fahrenheit.",
    tools=[get_forecast, to_fahrenheit],  # the allow-list: nothing else can run
    output=Forecast,
    budget=Budget(max_steps=5, max_tokens=5_000, max_cost_usd=0.01),  # hard limits for each run
    store="memory://",  # keep the journal in memory; the default is .keel/keel.db
)


def main() -> int:
    result = agent.run_sync("What's the high in Lisbon today, in both units?")

    print(f"status: {result.status.value}")
    print(f"output: {result.output!r}")
    usage = result.usage
    print(f"usage:  {usage.total_tokens} tokens ({usage.input_tokens} in / {usage.output_tokens} out), ", end="")
    print(f"{usage.requests} model calls, {usage.tool_calls} tool calls, ${usage.cost_usd:.6f}")
    print("journal:")
    for event in result.events:  # every step of the run, as recorded
        print(f"  #{event.seq} {event.kind.value}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
