"""``keel tools``: the tool-call log (O2): recent attempts, redacted, and per-tool figures."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from keel.observe.tools import tool_calls, tool_stats

from ._common import StoreOption, out_console, read_store
from ._render import money, timestamp
from .usage import parse_since

__all__ = ["tools_command"]

_OUTCOME_STYLE = {"ok": "green", "unavailable": "yellow", "interrupted": "yellow"}


def tools_command(
    since: Annotated[
        str | None, typer.Option("--since", help="Only calls within this long: 90s, 30m, 24h, 7d.")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's calls.", show_default=False)] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool.", show_default=False)] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="Only this outcome: ok, error, timeout, …", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many calls to list.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calls as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """List recent tool calls (arguments and results redacted), with latency, cost, attempt and outcome."""
    start = parse_since(since)
    console = out_console()
    records = read_store(
        store,
        lambda opened: tool_calls(opened, since=start, agent=agent, tool=tool, outcome=outcome, limit=limit),
        console,
    )
    if records is None:
        return
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in records], indent=2))
        return
    if not records:
        console.print(Text("no tool calls match", style="yellow"))
        return
    calls = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("when", "run", "tool", "try", "outcome", "ms", "cost", "arguments", "result"):
        calls.add_column(name, overflow="fold", justify="right" if name in ("try", "ms", "cost") else "left")
    for r in records:
        calls.add_row(
            timestamp(r.ts)[5:19], r.run_id, r.tool, str(r.attempt),
            Text("cached" if r.cache_hit else r.outcome, style=_OUTCOME_STYLE.get(r.outcome, "red")),
            f"{r.latency_ms:,.0f}", money(r.cost_usd),
            Text(r.arguments), Text(r.result),
        )  # fmt: skip
    console.print(calls)
    per_tool = Table(title="by tool", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("tool", "attempts", "failed", "cached", "p50 ms", "p95 ms", "cost"):
        per_tool.add_column(name, justify="left" if name == "tool" else "right")
    for s in tool_stats(records):
        per_tool.add_row(s.tool, str(s.attempts), str(s.failures), str(s.cache_hits), f"{s.p50_ms:,.0f}",
                         f"{s.p95_ms:,.0f}", money(s.cost_usd))  # fmt: skip
    console.print(per_tool)
