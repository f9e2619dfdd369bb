"""Agents for the CLI tests (`keel run tests.cli_agents:adder …`).

They use `FunctionModel`s that decide from the request, not one-shot scripts, so the same agent object can run
again and again in one test process.
"""

from __future__ import annotations

from keel import Agent, Budget, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.testing import FunctionModel, call, reply


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _add_then_answer(request: ModelRequest) -> ModelResponse:
    results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if not results:
        return call("add", a=2, b=3)
    return reply(f"2 + 3 = {results[-1].content}")


def _never_done(request: ModelRequest) -> ModelResponse:
    return call("add", a=1, b=1)


adder = Agent("adder", FunctionModel(_add_then_answer), tools=[add], store="memory://")
"""Completes in two steps."""

looper = Agent("looper", FunctionModel(_never_done), tools=[add], budget=Budget(max_steps=2), store="memory://")
"""Never answers: the step budget stops it (PARTIAL)."""

not_an_agent = "just a string"
