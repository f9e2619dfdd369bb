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
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _contenders import (
    Contender,
    bare_loop,
    keel_contender,
    openai_agents_contender,
    pydantic_ai_contender,
)
from _machine import cpu_model, version

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
            "keel-agents": version("keel-agents"),
            "pydantic-ai-slim": version("pydantic-ai-slim"),
            "openai-agents": version("openai-agents"),
            "pydantic": version("pydantic"),
        },
        "machine": {
            "cpu": cpu_model(),
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
        "tool_called, the step's checkpoint, run_finished) and the runs row: on SQLite each event is committed as "
        "it happens, the row with the first and the last event (5 transactions; WAL, synchronous=NORMAL, a temp "
        "file), with retries, loop detection and the guards at their defaults. "
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
