"""The contenders of `overhead.py`: one task, five runtimes, each checked to do the real work."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

TASK = "Where is order 1234?"
INSTRUCTIONS = "You help customers with their orders."
ORDER_ID = "1234"
ORDER = {"order_id": ORDER_ID, "status": "shipped", "items": 2, "total_usd": 39.9, "carrier": "UPS"}
FINAL_TEXT = "Order 1234 has shipped (2 items, $39.90, UPS)."
USAGE = ((120, 18), (190, 22))  # (input, output) tokens the instant model reports for turn 1 and turn 2
NOT_INSTALLED = "not installed (pip install -e '.[bench]')"

_call_ids = itertools.count(1)


def _next_call_id() -> str:
    return f"call_{next(_call_ids)}"


class ToolCounter:
    """Counts the calls one contender's `get_order` tool received, to prove every run really used it."""

    def __init__(self) -> None:
        self.calls = 0
        self.bad_args: list[Any] = []

    def hit(self, order_id: str) -> dict[str, Any]:
        if order_id != ORDER_ID:
            self.bad_args.append(order_id)
        self.calls += 1
        return dict(ORDER)


def make_get_order(counter: ToolCounter, *, is_async: bool) -> Callable[..., Any]:
    """A fresh `get_order` tool bound to `counter` (sync by default, like most tools people write)."""
    if is_async:

        async def get_order(order_id: str) -> dict[str, Any]:
            """Look up an order by id.

            Args:
                order_id: the order's id.
            """
            return counter.hit(order_id)

        return get_order

    def get_order(order_id: str) -> dict[str, Any]:  # type: ignore[misc]  # same name, other branch
        """Look up an order by id.

        Args:
            order_id: the order's id.
        """
        return counter.hit(order_id)

    return get_order


def _check_tool_result(content: Any) -> None:
    """The instant models only answer once they have seen the real tool result."""
    text = content if isinstance(content, str) else json.dumps(content)
    if "shipped" not in text:
        raise AssertionError(f"turn 2 did not see the tool result: {text!r}")


@dataclass
class Contender:
    name: str
    counter: ToolCounter = field(default_factory=ToolCounter)
    run_once: Callable[[], Awaitable[str]] | None = None
    """One complete agent run; returns the final text."""
    unavailable: str | None = None
    close: Callable[[], None] | None = None
    samples_ns: list[int] = field(default_factory=list)

    async def checked_run(self, *, timed: bool) -> None:
        assert self.run_once is not None
        before = self.counter.calls
        started = time.perf_counter_ns()
        output = await self.run_once()
        elapsed = time.perf_counter_ns() - started
        if output != FINAL_TEXT:
            raise AssertionError(f"{self.name}: wrong final output {output!r}")
        if self.counter.calls - before != 1 or self.counter.bad_args:
            raise AssertionError(
                f"{self.name}: expected 1 tool call with order_id={ORDER_ID!r}, got "
                f"{self.counter.calls - before} (bad args: {self.counter.bad_args})"
            )
        if timed:
            self.samples_ns.append(elapsed)


# --- 1. the floor: a hand-written loop -------------------------------------------------------------------------


def bare_loop(is_async_tool: bool) -> Contender:
    contender = Contender("bare asyncio loop (floor)")
    tools: dict[str, Callable[..., Any]] = {"get_order": make_get_order(contender.counter, is_async=is_async_tool)}

    async def model(messages: list[dict[str, Any]]) -> dict[str, Any]:
        last = messages[-1]
        if last["role"] == "tool":
            _check_tool_result(last["content"])
            return {"role": "assistant", "content": FINAL_TEXT, "usage": USAGE[1]}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": _next_call_id(), "name": "get_order", "arguments": json.dumps({"order_id": ORDER_ID})}
            ],
            "usage": USAGE[0],
        }

    async def run_once() -> str:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": TASK},
        ]
        for _ in range(10):
            reply = await model(messages)
            messages.append(reply)
            if not reply.get("tool_calls"):
                return str(reply["content"])
            for call in reply["tool_calls"]:
                value = tools[call["name"]](**json.loads(call["arguments"]))
                if asyncio.iscoroutine(value):
                    value = await value
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(value)})
        raise AssertionError("bare loop did not finish")

    contender.run_once = run_once
    return contender


# --- 2, 3. Keel -----------------------------------------------------------------------------------------------


def keel_contender(name: str, store: str, is_async_tool: bool) -> Contender:
    contender = Contender(name)
    try:
        import keel
        from keel.models.base import ModelRequest, ModelResponse, RequestUsage, ToolCall, ToolResultMessage
        from keel.models.pricing import Price
    except ImportError:
        contender.unavailable = "keel not importable"
        return contender

    class InstantModel(keel.Model):
        """Answers instantly: a tool call first, the final text once the tool result is in the request."""

        name = "bench:instant"

        @property
        def price(self) -> Price:
            return Price(0.15, 0.60)

        async def request(self, request: ModelRequest) -> ModelResponse:
            last = request.messages[-1]
            if isinstance(last, ToolResultMessage):
                _check_tool_result(last.content)
                return ModelResponse(
                    text=FINAL_TEXT, usage=RequestUsage(*USAGE[1]), finish_reason="stop", model_name=self.name
                )
            call = ToolCall(_next_call_id(), "get_order", json.dumps({"order_id": ORDER_ID}))
            return ModelResponse(
                tool_calls=(call,), usage=RequestUsage(*USAGE[0]), finish_reason="tool_calls", model_name=self.name
            )

    agent = keel.Agent(
        "bench",
        InstantModel(),
        instructions=INSTRUCTIONS,
        tools=[keel.tool(make_get_order(contender.counter, is_async=is_async_tool))],
        store=store,
    )

    async def run_once() -> str:
        result = await agent.run(TASK)
        if result.status is not keel.RunStatus.COMPLETED:
            raise AssertionError(f"{name}: run ended {result.status}: {result.report.reason}")
        return str(result.output)

    contender.run_once = run_once
    contender.close = lambda: agent.store.close()
    return contender


# --- 4. Pydantic AI -------------------------------------------------------------------------------------------


def pydantic_ai_contender(is_async_tool: bool) -> Contender:
    contender = Contender("Pydantic AI")
    try:
        from pydantic_ai import Agent
        from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
        from pydantic_ai.models.function import AgentInfo, FunctionModel
        from pydantic_ai.usage import RequestUsage
    except ImportError:
        contender.unavailable = NOT_INSTALLED
        return contender

    async def instant(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        for part in messages[-1].parts:
            if isinstance(part, ToolReturnPart) and part.tool_name == "get_order":
                _check_tool_result(part.content)
                return ModelResponse(
                    parts=[TextPart(FINAL_TEXT)],
                    usage=RequestUsage(input_tokens=USAGE[1][0], output_tokens=USAGE[1][1]),
                )
        return ModelResponse(
            parts=[ToolCallPart("get_order", {"order_id": ORDER_ID}, tool_call_id=_next_call_id())],
            usage=RequestUsage(input_tokens=USAGE[0][0], output_tokens=USAGE[0][1]),
        )

    agent = Agent(
        FunctionModel(instant),
        instructions=INSTRUCTIONS,
        tools=[make_get_order(contender.counter, is_async=is_async_tool)],
    )

    async def run_once() -> str:
        result = await agent.run(TASK)
        return result.output

    contender.run_once = run_once
    return contender


# --- 5. OpenAI Agents SDK -------------------------------------------------------------------------------------


def openai_agents_contender(is_async_tool: bool) -> Contender:
    contender = Contender("OpenAI Agents SDK")
    try:
        from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
        from agents.items import ModelResponse
        from agents.models.interface import Model
        from agents.usage import Usage
        from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
    except ImportError:
        contender.unavailable = NOT_INSTALLED
        return contender

    # Tracing would export spans to api.openai.com in a background thread; there is no network here.
    set_tracing_disabled(True)

    def _usage(turn: int) -> Usage:
        input_tokens, output_tokens = USAGE[turn]
        total = input_tokens + output_tokens
        return Usage(requests=1, input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total)

    class InstantModel(Model):
        async def get_response(
            self,
            system_instructions: str | None,
            input: str | list[Any],
            model_settings: Any,
            tools: list[Any],
            output_schema: Any,
            handoffs: list[Any],
            tracing: Any,
            *,
            previous_response_id: str | None,
            conversation_id: str | None,
            prompt: Any,
        ) -> ModelResponse:
            last = input[-1] if isinstance(input, list) and input else None
            if isinstance(last, dict) and last.get("type") == "function_call_output":
                _check_tool_result(last["output"])
                message = ResponseOutputMessage(
                    id=f"msg_{next(_call_ids)}",
                    content=[ResponseOutputText(annotations=[], text=FINAL_TEXT, type="output_text")],
                    role="assistant",
                    status="completed",
                    type="message",
                )
                return ModelResponse(output=[message], usage=_usage(1), response_id=None)
            call = ResponseFunctionToolCall(
                arguments=json.dumps({"order_id": ORDER_ID}),
                call_id=_next_call_id(),
                name="get_order",
                type="function_call",
                status="completed",
            )
            return ModelResponse(output=[call], usage=_usage(0), response_id=None)

        async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            raise NotImplementedError("the benchmark does not stream")
            yield  # pragma: no cover  (makes this an async generator)

    agent = Agent(
        name="bench",
        instructions=INSTRUCTIONS,
        tools=[function_tool(make_get_order(contender.counter, is_async=is_async_tool))],
    )
    run_config = RunConfig(model=InstantModel(), tracing_disabled=True)

    async def run_once() -> str:
        result = await Runner.run(agent, TASK, run_config=run_config)
        return str(result.final_output)

    contender.run_once = run_once
    return contender
