"""Live progress of a run (each journal event printed as it is recorded) and the summary printed at its end.

The pipeline is not touched: the agent's store is wrapped in an `ObservingStore` that hands every appended
event to a callback once the inner store has committed it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from keel.agent import Agent
from keel.journal import Event, EventKind, Phase
from keel.result import RunResult, RunStatus
from keel.store.base import RunRecord, Store
from keel.store.memory import MemoryStore

from ._render import STATUS_STYLES, as_shown, event_summary, metrics, money, status_text

__all__ = ["ObservingStore", "ProgressPrinter", "observed", "observed_run", "show_result"]


class ObservingStore:
    """A `Store` that passes everything to `inner` and reports each appended event to `on_event`.

    Methods it does not define are delegated to `inner` too, so stores that grow new methods keep working. A
    failing callback never fails the run: the first error is kept in `callback_error` and the rest ignored.
    """

    def __init__(self, inner: Store, on_event: Callable[[Event], None]) -> None:
        self.inner = inner
        self.url = inner.url
        self._on_event = on_event
        self.callback_error: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copying, unpickling): no delegation loop
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def create_run(self, run: RunRecord, first: Event) -> None:
        """Insert a new run in the inner store, then report its first event."""
        await self.inner.create_run(run, first)
        self._report(first)

    async def finish_run(self, run: RunRecord, last: Event) -> None:
        """Close the run in the inner store, then report its last event."""
        await self.inner.finish_run(run, last)
        self._report(last)

    async def append(self, event: Event) -> None:
        """Append to the inner store, then report the event."""
        await self.inner.append(event)
        self._report(event)

    async def resume_run(self, run_id: str, first: Event, *, paused: RunStatus) -> RunRecord:
        """Claim the paused run in the inner store, then report its resumed ``run_started``."""
        run = await self.inner.resume_run(run_id, first, paused=paused)
        self._report(first)
        return run

    def _report(self, event: Event) -> None:
        if self.callback_error is not None:
            return
        try:
            self._on_event(event)
        except Exception as exc:  # a display problem (closed pipe, …) must not fail the run
            self.callback_error = exc

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()


_LABELS = {
    EventKind.RUN_STARTED: "start",
    EventKind.MODEL_CALLED: "model",
    EventKind.TOOL_CALLED: "  tool",
    EventKind.TOOL_REJECTED: "  reject",
    EventKind.GUARD_VERDICT: "  guard",
    EventKind.BUDGET_REFUSED: "budget",
    EventKind.ESCALATED: "pause",
    EventKind.REVIEW_DECIDED: "review",
    EventKind.RUN_FINISHED: "end",
    EventKind.CHECKPOINT: "  step",
    EventKind.BUDGET_RESERVED: "  hold",
    EventKind.LOOP_DETECTED: "loop",
    EventKind.RETRY_SCHEDULED: "  retry",
    EventKind.FALLBACK_USED: "fallback",
    EventKind.CACHE_HIT: "  cache",
    EventKind.PLAN_VERSION: "plan",
}


class ProgressPrinter:
    """Prints one line per journal event: the model's decisions, tool outcomes, rejections, the end."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: Event) -> None:
        """Print `event` on one line (its payload redacted: a terminal is a log)."""
        event = as_shown(event)
        label = _LABELS.get(event.kind, f"  {event.kind.value}")
        line = Text.assemble((f"{label:<9}", "bold"), event_summary(event))
        figures = metrics(event)
        if figures:
            line.append("  ")
            line.append_text(figures)
        self.console.print(line, no_wrap=True, overflow="ellipsis")
        for note in event.payload.get("provider_notes") or ():  # what the runtime did on the model's behalf
            self.console.print(Text.assemble((f"{'  keel':<9}", "bold yellow"), str(note)), overflow="fold")


async def observed_run(
    agent: Agent, task: str, *, session_id: str | None, store: Store | None, console: Console
) -> RunResult:
    """Run `agent` on `task`, printing each step; `store` replaces the agent's own store when given."""
    return await observed(agent, lambda watched: watched.run(task, session_id=session_id), store=store, console=console)


async def observed(
    agent: Agent,
    work: Callable[[Agent], Awaitable[RunResult]],
    *,
    store: Store | None,
    console: Console,
) -> RunResult:
    """Do `work` (a run, a resume) with `agent`, printing each step; `store` replaces the agent's own when given.

    The agent itself is left untouched: a shallow copy works, with the observing store in place of its own. The
    model's connections on this loop are closed at the end, since a command runs one loop for one run.
    """
    printer = ProgressPrinter(console)
    watched = agent.with_store(ObservingStore(store if store is not None else agent.store, printer))
    spinner: AbstractContextManager[Any] = console.status("working…") if console.is_terminal else nullcontext()
    try:
        with spinner:
            return await work(watched)
    finally:
        await agent.model.aclose()  # the command's event loop ends with this run


def _output(output: Any) -> RenderableType:
    if output is None:
        return Text("(no output)", style="dim")
    if isinstance(output, BaseModel):
        return Text(output.model_dump_json(indent=2))
    if isinstance(output, str):
        return Text(output)
    return Text(json.dumps(output, indent=2, ensure_ascii=False, default=str))


def _tokens(result: RunResult) -> str:
    usage = result.usage
    line = (
        f"{usage.total_tokens:,} ({usage.input_tokens:,} in / {usage.output_tokens:,} out) · "
        f"{usage.requests} model call{'s' if usage.requests != 1 else ''} · "
        f"{usage.tool_calls} tool call{'s' if usage.tool_calls != 1 else ''}"
    )
    if len(usage.by_phase) > 1:
        phases = ", ".join(f"{Phase(p).value} {u.total_tokens:,}" for p, u in usage.by_phase.items())
        line += f" · by phase: {phases}"
    return line


def show_result(console: Console, result: RunResult, *, store: Store, store_flag: str) -> None:
    """Print a run's output, status, tokens, cost, run id, and the commands that inspect it."""
    color = STATUS_STYLES.get(result.status, "none").split()[-1]
    title = "output" if result.ok else "best output so far"
    console.print()
    console.print(Panel(_output(result.output), title=title, title_align="left", border_style=color))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("status", Text.assemble(status_text(result.status), f" — {result.report.reason}"))
    if not result.ok:
        for line in result.report.done:
            grid.add_row("done", Text(line, style="green"))
        for line in result.report.not_done:
            grid.add_row("not done", Text(line, style="yellow"))
    grid.add_row("tokens", _tokens(result))
    grid.add_row("cost", money(result.usage.cost_usd))
    grid.add_row("run id", Text(result.run_id, style="bold"))
    if isinstance(store, MemoryStore):
        grid.add_row("store", Text("memory:// — the journal is gone when this process ends", style="yellow"))
    else:
        grid.add_row("store", store.url)
        if result.status is RunStatus.ESCALATED:
            grid.add_row("next", Text(f"keel review list --run {result.run_id}{store_flag}", style="cyan"))
            grid.add_row("", Text(f"keel review approve REVIEW_ID --by NAME (or deny){store_flag}", style="cyan"))
            grid.add_row("then", Text(f"{result.report.resume}{store_flag}", style="cyan"))
        else:
            grid.add_row("next", Text(f"keel trace {result.run_id}{store_flag}", style="cyan"))
            grid.add_row("", Text(f"keel runs{store_flag}", style="cyan"))
    console.print(grid)
