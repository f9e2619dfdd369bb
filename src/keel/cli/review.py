"""``keel review list|show|approve|deny``: the human review queue (G4) from the shell.

Reading commands open the store read-only and never create one. Deciding needs a writable store, but only an
existing one: a mistyped ``--store`` is reported, not created empty. Deciding an unknown item, or one already
decided (here or by anyone else, in any process), is a usage error (exit 2) that names the first decision.
"""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from keel.errors import StoreNotFoundError
from keel.guardrails.pii import redact_pii
from keel.guardrails.review import ReviewItem, ReviewQueue
from keel.observe.tools import redacted_payload
from keel.store.base import Decision, ReviewStatus

from ._common import StoreOption, existing_store, keel_errors, out_console, run_async, store_flag, using_store
from ._render import call_text, short, timestamp

__all__ = ["review_app"]

review_app = typer.Typer(
    name="review",
    help="The human review queue: list, show, approve or deny actions that runs paused for.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

_STATUS_STYLES = {"pending": "bold magenta", "approved": "bold green", "denied": "bold red"}


class Shown(StrEnum):
    """Which items ``keel review list`` shows."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    ALL = "all"


_WANTED: dict[Shown, ReviewStatus | None] = {
    Shown.PENDING: "pending",
    Shown.APPROVED: "approved",
    Shown.DENIED: "denied",
    Shown.ALL: None,
}


def _shown(item: ReviewItem) -> ReviewItem:
    """`item` as a terminal may show it: its reason, arguments and note redacted (the queue keeps them whole)."""
    return dataclasses.replace(
        item,
        reason=redact_pii(item.reason),
        arguments=redacted_payload(item.arguments),
        note=redact_pii(item.note) if item.note else item.note,
    )


def _status(item: ReviewItem) -> Text:
    return Text(item.status, style=_STATUS_STYLES.get(item.status, ""))


WIDE = 120
"""Console width from which `keel review list` shows every column (agent, reason, decider, full times)."""


def _table(items: list[ReviewItem], *, decided: bool, wide: bool) -> Table:
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=not wide)
    table.add_column("review", no_wrap=True)
    table.add_column("run", no_wrap=True)
    if wide:
        table.add_column("agent", overflow="fold")
    table.add_column("pri", justify="right", no_wrap=True)
    table.add_column("action", overflow="fold", min_width=16)
    if wide:
        table.add_column("reason", overflow="fold", min_width=16)
    table.add_column("created", no_wrap=True)
    if decided:
        table.add_column("status", no_wrap=True)
        if wide:
            table.add_column("decided by", overflow="fold")
    for item in map(_shown, items):
        created = timestamp(item.created_at)
        cells: list[str | Text] = [item.id, item.run_id]
        if wide:
            cells.append(Text(item.agent))
        cells += [str(item.priority), Text(call_text(item.action, item.arguments, 60 if wide else 40))]
        if wide:
            cells.append(Text(short(item.reason, 100)))
        cells.append(created if wide else created[5:16])
        if decided:
            cells.append(_status(item))
            if wide:
                cells.append(Text(item.decided_by or ""))
        table.add_row(*cells)
    return table


@review_app.command("list")
def list_command(
    status: Annotated[
        Shown, typer.Option("--status", case_sensitive=False, help="Which items: pending, approved, denied or all.")
    ] = Shown.PENDING,
    run: Annotated[
        str | None, typer.Option("--run", metavar="RUN_ID", help="Only this run's items.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many items to show.")] = 50,
    store: StoreOption = None,
) -> None:
    """List review items: pending ones by priority, then oldest first (decided ones most recent first)."""
    console = out_console()
    wanted = _WANTED[status]
    with keel_errors():
        try:
            with using_store(store, create=False) as opened:
                items = run_async(ReviewQueue(opened).items(status=wanted, run_id=run, limit=limit))
        except StoreNotFoundError as exc:
            console.print(Text(f"no review items (no store at {exc.path})", style="yellow"))
            return
    if not items:
        what = "review items" if wanted is None else f"{wanted} review items"
        of_run = f" for run {run}" if run else ""
        console.print(Text(f"no {what}{of_run} in the store at {opened.url}", style="yellow"))
        return
    wide = console.width >= WIDE
    console.print(_table(items, decided=wanted != "pending", wide=wide))
    if not wide:
        console.print(
            Text(f"agent and reason shown from {WIDE} columns on; or see keel review show REVIEW_ID", style="dim")
        )
    if any(item.status == "pending" for item in items):
        hint = f"decide with: keel review approve REVIEW_ID --by NAME (or deny){store_flag(opened, store)}"
        console.print(Text(hint, style="dim"), soft_wrap=True)


@review_app.command("show")
def show_command(
    review_id: Annotated[str, typer.Argument(metavar="REVIEW_ID", help="The item, as `keel review list` shows it.")],
    store: StoreOption = None,
) -> None:
    """Show one review item: the proposed action with its arguments, why it needs a person, and any decision."""
    with keel_errors(), using_store(store, create=False) as opened:
        item = _shown(run_async(ReviewQueue(opened).get(review_id)))
        flag = store_flag(opened, store)
    text = Text.assemble((item.id, "bold"), "  ", _status(item), f"  priority {item.priority}\n")
    text.append(f"run:       {item.run_id} ({item.agent})\n")
    text.append(f"action:    {call_text(item.action, item.arguments, 200)}\n")
    text.append(f"reason:    {item.reason}\n")
    arguments = json.dumps(item.arguments, indent=2, ensure_ascii=False, default=str)
    text.append("arguments: " + arguments.replace("\n", "\n           ") + "\n")
    text.append(f"created:   {timestamp(item.created_at)}\n")
    if item.status == "pending":
        hint = f"decide with: keel review approve {item.id} --by NAME (or deny){flag}"
    else:
        note = f": {item.note}" if item.note else ""
        text.append(f"decided:   {item.status} by {item.decided_by} at {timestamp(item.decided_at)}{note}\n")
        hint = f"resume with: keel resume {item.run_id}{flag}"
    console = out_console()
    console.print(text, end="")
    console.print(Text(hint, style="cyan"), soft_wrap=True)  # a command to copy: never broken across lines


def _decide(review_id: str, decision: Decision, by: str, note: str, store: str | None) -> None:
    with keel_errors(), existing_store(store) as opened:
        queue = ReviewQueue(opened)
        if decision == "approved":
            item = run_async(queue.approve(review_id, by=by, note=note))
        else:
            item = run_async(queue.deny(review_id, by=by, note=note))
        flag = store_flag(opened, store)
    item = _shown(item)
    console = out_console()
    said = f": {item.note}" if item.note else ""
    console.print(
        Text.assemble(
            (item.status, _STATUS_STYLES[item.status]),
            f" {item.id} — {call_text(item.action, item.arguments, 100)} in run {item.run_id}, by {item.decided_by}",
            said,
        )
    )
    console.print(Text(f"resume with: keel resume {item.run_id}{flag}", style="cyan"), soft_wrap=True)


ReviewIdArgument = Annotated[str, typer.Argument(metavar="REVIEW_ID", help="The item, as `keel review list` shows it.")]
ByOption = Annotated[str, typer.Option("--by", metavar="NAME", help="Who decides (recorded with the decision).")]
NoteOption = Annotated[str, typer.Option("--note", help="Why, for the record and the resumed run.")]


@review_app.command("approve")
def approve_command(
    review_id: ReviewIdArgument, by: ByOption, note: NoteOption = "", store: StoreOption = None
) -> None:
    """Approve a pending item: the paused run may take the action when it resumes."""
    _decide(review_id, "approved", by, note, store)


@review_app.command("deny")
def deny_command(review_id: ReviewIdArgument, by: ByOption, note: NoteOption = "", store: StoreOption = None) -> None:
    """Deny a pending item: the resumed run is told the action was denied and goes on without it."""
    _decide(review_id, "denied", by, note, store)
