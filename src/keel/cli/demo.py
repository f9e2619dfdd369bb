"""``keel demo``: the support-desk agent answering a customer about a late order, offline, with no API key."""

from __future__ import annotations

import typer
from rich.panel import Panel
from rich.text import Text

from keel.demo.support import DEMO_TASK, build_agent

from ._common import StoreOption, exit_code, keel_errors, out_console, run_async, store_flag, using_store
from ._progress import observed_run, show_result

__all__ = ["DISCLAIMER", "demo_command"]

DISCLAIMER = (
    "scripted (keel.testing.ScriptedModel): a fixed script stands in for the model, so the model's words are "
    "canned. The embedded local model (local:default) arrives in a later release; until then pass a real agent "
    'to `keel run MODULE:AGENT "task"`. The tool calls, the budget, the journal and the accounting below are real.'
)
"""What the demo says about its model, plainly, every time it runs."""


def demo_command(store: StoreOption = None) -> None:
    """Run the support-desk demo: a real agent, real tool calls on a bundled dataset, a scripted model."""
    console = out_console()
    with keel_errors(), using_store(store) as opened:
        agent = build_agent(store=opened)
        intro = Text()
        intro.append("model  ", style="bold")
        intro.append(DISCLAIMER + "\n", style="yellow")
        intro.append("tools  ", style="bold")
        intro.append(", ".join(f"{t.name} ({t.severity})" for t in agent.tools) + "\n")
        intro.append("store  ", style="bold")
        intro.append(opened.url + "\n")
        intro.append("task   ", style="bold")
        intro.append(DEMO_TASK)
        console.print(Panel(intro, title="Keel demo · support desk", title_align="left", border_style="cyan"))
        result = run_async(observed_run(agent, DEMO_TASK, session_id="demo", store=None, console=console))
        show_result(console, result, store=opened, store_flag=store_flag(opened, store))
    raise typer.Exit(exit_code(result.status))
