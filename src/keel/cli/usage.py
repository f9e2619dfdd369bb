"""``keel usage``: tokens and money over runs, by phase, model and agent (O3), read from the journal."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keel.journal import Phase
from keel.observe.usage import UsageReport, usage_report
from keel.observe.window import parse_duration
from keel.usage import PhaseUsage, Usage

from ._common import StoreOption, out_console, read_store
from ._render import money

__all__ = ["parse_since", "usage_command"]


def parse_since(value: str | None) -> float | None:
    """``"24h"`` → the Unix time 24 hours ago; None stays None. Units: s, m, h, d."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _row(name: str, usage: Usage | PhaseUsage) -> list[str]:
    return [
        name,
        f"{usage.requests:,}",
        f"{usage.input_tokens:,}",
        f"{usage.output_tokens:,}",
        f"{usage.total_tokens:,}",
        money(usage.cost_usd),
    ]


def _table(title: str, rows: list[list[str]], total: Usage | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for index, name in enumerate(("", "calls", "input", "output", "tokens", "cost")):
        table.add_column(name, justify="left" if index == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if total is not None:
        table.add_section()
        table.add_row(*_row("total", total), style="bold")
    return table


def _show(console: Console, report: UsageReport, scope: str) -> None:
    if report.runs == 0:
        console.print(Text(f"no runs {scope}", style="yellow"))
        return
    total = report.total
    phases = [_row(phase.value, total.by_phase[phase]) for phase in Phase if phase in total.by_phase]
    console.print(_table(f"{report.runs:,} runs {scope}, by phase", phases, total))
    models = sorted(report.by_model.items(), key=lambda item: -item[1].cost_usd)
    console.print(_table("by model", [_row(name, usage) for name, usage in models]))
    if len(report.by_agent) > 1:
        agents = sorted(report.by_agent.items(), key=lambda item: -item[1].cost_usd)
        console.print(_table("by agent", [_row(name, usage) for name, usage in agents]))
    paid = total.cost_usd - sum(u.cost_usd for u in report.by_model.values())
    if paid > 1e-12:
        console.print(Text(f"paid tool calls: {money(paid)} (in the totals, not in any model's row)"))
    if report.truncated:
        console.print(Text("more runs matched: the most recent ones are counted; narrow with --since", style="yellow"))


def _as_json(usage: Usage) -> dict[str, Any]:
    return {
        "requests": usage.requests,
        "tool_calls": usage.tool_calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": round(usage.cost_usd, 10),
        "by_phase": {
            phase.value: {
                "requests": p.requests,
                "input_tokens": p.input_tokens,
                "output_tokens": p.output_tokens,
                "cost_usd": round(p.cost_usd, 10),
            }
            for phase, p in usage.by_phase.items()
        },
    }


def usage_command(
    session: Annotated[str | None, typer.Option("--session", help="Only this session.", show_default=False)] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs.", show_default=False)] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs started within this long: 90s, 30m, 24h, 7d.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Tokens and money spent by runs, by phase (routing … summarization), model and agent."""
    start = parse_since(since)
    scope = (
        " ".join(
            f
            for f in (
                f"since {since}" if since else "",
                f"in session {session}" if session else "",
                f"of agent {agent}" if agent else "",
            )
            if f
        )
        or "in the store"
    )
    console = out_console()
    report = read_store(
        store, lambda opened: usage_report(opened, since=start, session_id=session, agent=agent), console
    )
    if report is None:
        return
    if as_json:
        data = {
            "runs": report.runs,
            "truncated": report.truncated,
            "total": _as_json(report.total),
            "by_model": {name: _as_json(u) for name, u in report.by_model.items()},
            "by_agent": {name: _as_json(u) for name, u in report.by_agent.items()},
        }
        typer.echo(json.dumps(data, indent=2))
        return
    _show(console, report, scope)
