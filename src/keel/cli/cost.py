"""``keel cost``: spend by agent, model, tier and phase; cache savings; the tiering saving against one large model."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keel.observe.cost import CostReport, Spend, cost_report

from ._common import StoreOption, out_console, read_store
from ._render import money
from .usage import parse_since

__all__ = ["cost_command"]


def _table(title: str, groups: dict[str, Spend]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for index, name in enumerate(("", "calls", "tokens", "cost")):
        table.add_column(name, justify="left" if index == 0 else "right", no_wrap=True)
    for name, spend in sorted(groups.items(), key=lambda item: -item[1].cost_usd):
        table.add_row(name, f"{spend.calls:,}", f"{spend.tokens:,}", money(spend.cost_usd))
    return table


def _show(console: Console, report: CostReport, scope: str) -> None:
    if report.runs == 0:
        console.print(Text(f"no runs {scope}", style="yellow"))
        return
    console.print(Text.assemble((f"{report.runs:,} runs {scope}: ", "bold"), money(report.total.cost_usd)))
    for title, groups in (("by agent", report.by_agent), ("by model", report.by_model), ("by tier", report.by_tier),
                          ("by phase", report.by_phase)):  # fmt: skip
        if groups:
            console.print(_table(title, groups))
    console.print(
        f"caches: {report.cache_hits:,} hits saved {money(report.cache_saved_usd)} "
        f"and {report.cache_saved_tokens:,} tokens"
    )
    if (share := report.tiering_saving_pct) is not None:
        console.print(
            f"tiering: {money(report.tiered_cost_usd)} instead of {money(report.tiered_baseline_usd)} on the large "
            f"model alone at list price: {money(report.tiering_saving_usd)} saved ({share:.0%})"
        )
    if report.truncated:
        console.print(Text("more runs matched: the most recent ones are counted; narrow with --since", style="yellow"))


def cost_command(
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs started within this long: 90s, 30m, 24h, 7d.")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Spend by agent, model, tier and phase; what caches saved; what tiering saved against the large model alone."""
    start = parse_since(since)
    scope = " ".join(f for f in (f"since {since}" if since else "", f"of agent {agent}" if agent else "") if f)
    console = out_console()
    report = read_store(store, lambda opened: cost_report(opened, since=start, agent=agent), console)
    if report is None:
        return
    if as_json:
        data = {
            **dataclasses.asdict(report),
            "tiering_saving_usd": report.tiering_saving_usd,
            "tiering_saving_pct": report.tiering_saving_pct,
        }
        typer.echo(json.dumps(data, indent=2))
        return
    _show(console, report, scope or "in the store")
