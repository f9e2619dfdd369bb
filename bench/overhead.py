"""Per-run framework overhead: the same 2-turn, 1-tool-call task on an instant in-process model.

Contenders (all in one process, on one event loop, interleaved in shuffled rounds):

1. a minimal hand-written asyncio loop (the floor);
2. Keel, full pipeline, journal on SQLite (a temp file, WAL, the default ``synchronous=NORMAL``);
3. Keel, full pipeline, in-memory store;
4. Pydantic AI (``pydantic_ai.models.function.FunctionModel``);
5. the OpenAI Agents SDK (a custom ``agents.models.interface.Model``), tracing disabled.

Every contender's model answers turn 1 with a call ``get_order(order_id="1234")`` and, once it has seen the
tool's result, turn 2 with the final text. Each run is checked: right final text, exactly one tool call.

    .venv/bin/python bench/overhead.py [--runs 500] [--rounds 10] [--warmup 50] [--tool sync|async] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
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


# --- measurement ----------------------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def measure(contenders: list[Contender], *, runs: int, rounds: int, warmup: int, seed: int) -> None:
    active = [c for c in contenders if c.run_once is not None]
    for contender in active:
        for _ in range(warmup):
            await contender.checked_run(timed=False)
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    rng = random.Random(seed)
    for count in per_round:
        order = active[:]
        rng.shuffle(order)
        for contender in order:
            gc.collect()
            for _ in range(count):
                await contender.checked_run(timed=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def summarize(contenders: list[Contender], args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    medians: dict[str, float] = {}
    for contender in contenders:
        if contender.run_once is None or not contender.samples_ns:
            rows.append({"contender": contender.name, "status": contender.unavailable or "no samples"})
            continue
        us = sorted(ns / 1000 for ns in contender.samples_ns)
        medians[contender.name] = statistics.median(us)
        rows.append(
            {
                "contender": contender.name,
                "status": "ok",
                "runs": len(us),
                "median_us": statistics.median(us),
                "p95_us": _percentile(us, 0.95),
                "mean_us": statistics.fmean(us),
                "min_us": us[0],
            }
        )
    floor = medians.get(contenders[0].name)
    pydantic_ai = medians.get("Pydantic AI")
    for row in rows:
        if row["status"] != "ok":
            continue
        row["x_bare"] = row["median_us"] / floor if floor else None
        row["x_pydantic_ai"] = row["median_us"] / pydantic_ai if pydantic_ai else None
    return {
        "task": "2 model turns, 1 tool call (get_order), instant in-process model",
        "tool": args.tool,
        "runs_per_contender": args.runs,
        "rounds": args.rounds,
        "warmup_per_contender": args.warmup,
        "rows": rows,
        "versions": {
            "python": platform.python_version(),
            "keel-agents": _version("keel-agents"),
            "pydantic-ai-slim": _version("pydantic-ai-slim"),
            "openai-agents": _version("openai-agents"),
            "pydantic": _version("pydantic"),
        },
        "machine": {
            "cpu": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "platform": platform.platform(),
            "implementation": platform.python_implementation(),
        },
    }


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}×" if value < 0.1 else f"{value:.2f}×"


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"Per-run overhead, {summary['tool']} tool: {summary['task']}",
        caption=f"{summary['runs_per_contender']} measured runs per contender in {summary['rounds']} shuffled "
        f"rounds, after {summary['warmup_per_contender']} warm-up runs",
    )
    table.add_column("contender")
    table.add_column("median µs/run", justify="right")
    table.add_column("p95 µs/run", justify="right")
    table.add_column("× bare loop", justify="right")
    table.add_column("× Pydantic AI", justify="right")
    for row in summary["rows"]:
        if row["status"] != "ok":
            table.add_row(row["contender"], escape(row["status"]), "", "", "")
            continue
        table.add_row(
            row["contender"],
            f"{row['median_us']:,.0f}",
            f"{row['p95_us']:,.0f}",
            _ratio(row["x_bare"]),
            _ratio(row["x_pydantic_ai"]),
        )
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    versions = summary["versions"]
    machine = summary["machine"]
    console.print(
        f"Python {versions['python']} ({machine['implementation']}), keel-agents {versions['keel-agents']}, "
        f"pydantic-ai-slim {versions['pydantic-ai-slim']}, openai-agents {versions['openai-agents']}, "
        f"pydantic {versions['pydantic']}"
    )
    console.print(f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, {machine['platform']}")
    console.print(
        "Notes: one process, one asyncio event loop, default settings for every framework, except that the "
        "OpenAI Agents SDK runs with tracing disabled (set_tracing_disabled(True), RunConfig(tracing_disabled=True)): "
        "its default exporter would send spans to api.openai.com. Pydantic AI runs with its default "
        "(instrumentation off, no logfire). Keel journals every event (run_started, 2× model_called, "
        "tool_called, run_finished) and the runs row: on SQLite each event is committed as it happens, the "
        "row with the first and the last event (4 transactions; WAL, synchronous=NORMAL, a temp file). "
        + (
            "The tool is a plain `def`: Keel, Pydantic AI and the Agents SDK run it in a worker thread; "
            "the bare loop calls it inline."
            if summary["tool"] == "sync"
            else "The tool is an `async def`, awaited on the loop by every contender."
        ),
        style="dim",
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    is_async_tool = args.tool == "async"
    tmp = Path(tempfile.mkdtemp(prefix="keel-bench-"))
    contenders = [
        bare_loop(is_async_tool),
        keel_contender("Keel (SQLite journal)", str(tmp / "keel.db"), is_async_tool),
        keel_contender("Keel (memory store)", "memory://", is_async_tool),
        pydantic_ai_contender(is_async_tool),
        openai_agents_contender(is_async_tool),
    ]
    try:
        await measure(contenders, runs=args.runs, rounds=args.rounds, warmup=args.warmup, seed=args.seed)
    finally:
        for contender in contenders:
            if contender.close is not None:
                contender.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return summarize(contenders, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=500, help="measured runs per contender (default 500)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up runs per contender (default 50)")
    parser.add_argument("--tool", choices=("sync", "async"), default="sync", help="the tool as `def` or `async def`")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round shuffle")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rounds < 1 or args.rounds > args.runs or args.warmup < 0:
        parser.error("need runs >= rounds >= 1 and warmup >= 0")
    summary = asyncio.run(main_async(args))
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
