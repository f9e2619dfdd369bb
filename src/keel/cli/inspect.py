"""``keel runs`` and ``keel trace``: look at what ran, from the store's runs table and journals."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from keel.errors import StoreNotFoundError
from keel.guardrails.pii import redact_pii
from keel.journal import Event
from keel.recovery.owner import Interrupted, find_interrupted
from keel.result import RunStatus
from keel.store.base import RunRecord

from ._common import StoreOption, keel_errors, out_console, run_async, using_store
from ._render import as_shown, event_details, event_summary, metrics, money, short, status_text, timestamp

__all__ = ["event_json", "runs_command", "trace_command"]


WIDE = 120
"""Console width from which `keel runs` shows every column (session, reason, full start time)."""


def _runs_table(runs: list[RunRecord], *, wide: bool) -> Table:
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=not wide)
    table.add_column("run", no_wrap=True)
    table.add_column("agent", overflow="fold")
    table.add_column("status", no_wrap=True)
    for name in ("steps", "tokens", "cost"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    if wide:
        table.add_column("session", overflow="fold")
        table.add_column("reason", overflow="fold")
    for run in runs:
        started = timestamp(run.started_at)
        cells: list[str | Text] = [
            run.run_id,
            Text(run.agent),
            status_text(run.status),
            str(run.steps),
            f"{run.total_tokens:,}",
            money(run.cost_usd),
            started if wide else started[5:16],
        ]
        if wide:
            cells += [Text(run.session_id or ""), Text(short(run.reason or "", 100))]
        table.add_row(*cells)
    return table


def runs_command(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs to show.")] = 20,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs.", show_default=False)] = None,
    session: Annotated[str | None, typer.Option("--session", help="Only this session.", show_default=False)] = None,
    status: Annotated[
        RunStatus | None, typer.Option("--status", case_sensitive=False, help="Only runs that ended so.")
    ] = None,
    interrupted: Annotated[
        bool, typer.Option("--interrupted", help="Only runs whose process died mid-run (resume them).")
    ] = False,
    store: StoreOption = None,
) -> None:
    """List recent runs, most recent first; --interrupted lists runs whose process died, to resume."""
    console = out_console()
    with keel_errors():
        try:
            with using_store(store, create=False) as opened:
                if interrupted:
                    _show_interrupted(console, run_async(find_interrupted(opened, limit=limit)))
                    return
                runs = run_async(opened.list_runs(limit=limit, agent=agent, session_id=session, status=status))
        except StoreNotFoundError as exc:
            console.print(Text(f"no runs yet (no store at {exc.path})", style="yellow"))
            return
    if not runs:
        filtered = " match these filters" if (agent or session or status) else ""
        console.print(Text(f"no runs in the store at {opened.url}{filtered}", style="yellow"))
        return
    wide = console.width >= WIDE
    console.print(_runs_table(runs, wide=wide))
    if not wide:
        console.print(Text(f"session and reason shown from {WIDE} columns on; or see keel trace RUN_ID", style="dim"))


def _show_interrupted(console: Console, found: list[Interrupted]) -> None:
    if not found:
        console.print(Text("no interrupted runs: every run marked running has a live process", style="green"))
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("run", "agent", "steps", "cost", "started", "process", "resume with"):
        table.add_column(name, overflow="fold")
    for item in found:
        run, owner = item.run, item.owner
        process = f"{owner} ({'dead' if item.alive is False else 'cannot check'})" if owner else "not recorded"
        force = "" if item.alive is False else " --force"
        table.add_row(
            run.run_id,
            run.agent,
            str(run.steps),
            money(run.cost_usd),
            timestamp(run.started_at),
            process,
            f"keel resume {run.run_id}{force}",
        )
    console.print(table)


def event_json(event: Event) -> dict[str, Any]:
    """An event as a JSON object with stable keys (the `Event` fields, in order), its payload redacted."""
    data = dataclasses.asdict(as_shown(event))
    data["kind"] = event.kind.value
    data["phase"] = event.phase.value
    return data


def _header(run: RunRecord) -> Text:
    text = Text.assemble((run.run_id, "bold"), "  ", status_text(run.status), f"  {run.agent} on {run.model}", "\n")
    text.append(f"task: {short(redact_pii(run.task), 300)}\n")
    details = [f"started {timestamp(run.started_at)}"]
    if run.session_id:
        details.append(f"session {run.session_id}")
    details.append(f"{run.steps} steps · {run.total_tokens:,} tokens · {money(run.cost_usd)}")
    text.append(" · ".join(details), style="dim")
    return text


def _tree(run: RunRecord, events: list[Event]) -> Tree:
    tree = Tree(_header(run), guide_style="dim")
    for event in map(as_shown, events):
        label = Text.assemble(
            (f"#{event.seq} ", "dim"), (event.kind.value, "bold"), (f" [{event.phase.value}] ", "dim")
        )
        label.append_text(event_summary(event, brief=True))
        figures = metrics(event)
        if figures:
            label.append("  ")
            label.append_text(figures)
        node = tree.add(label)
        for line in event_details(event):
            node.add(line)
    return tree


def trace_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run, as `keel runs` shows it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as a JSON array.")] = False,
    store: StoreOption = None,
) -> None:
    """Show a run's journal: every model call, tool call, rejection and verdict, with tokens and cost."""
    with keel_errors(), using_store(store, create=False) as opened:
        run = run_async(opened.get_run(run_id))
        events = run_async(opened.events(run_id))
    if as_json:
        typer.echo(json.dumps([event_json(e) for e in events], indent=2, ensure_ascii=False, default=str))
        return
    out_console().print(_tree(run, events))
