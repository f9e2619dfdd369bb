"""``keel demo``: the article's four weeks of production failures replayed and stopped, then a live agent.

First the replays (`keel.cli._demo_weeks`): a hallucinated tool retried forever, a 47-step plan for a 3-step task,
$2,400 on one request, a person reviewing every action — each happens again with a scripted model, and Keel stops
it. Then the support-desk agent answers a customer about a late order on the embedded model (``local:default``:
SmolLM2-135M-Instruct, bundled with the ``local`` extra, on this CPU), with real tool calls. ``--model`` runs the
live part on any model Keel can name; ``--scripted`` on a fixed script. The demo ends with what it all added up
to and the commands to look deeper. Ctrl-C stops it cleanly: every run so far is journaled.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from keel.demo.support import DEMO_TASK, SupportDesk, build_agent, scripted_model
from keel.errors import MissingDependencyError
from keel.models import Model, infer_model
from keel.models.local import INSTALL_HINT

from ._common import (
    EXIT_USAGE,
    StoreOption,
    exit_code,
    fail,
    keel_errors,
    out_console,
    run_async,
    store_flag,
    using_store,
)
from ._demo_weeks import Tally, replay_weeks
from ._progress import observed_run, show_result
from ._render import money

__all__ = ["DEFAULT_DEMO_MODEL", "LOCAL_NOTE", "SCRIPTED_NOTE", "demo_command"]

DEFAULT_DEMO_MODEL = "local:default"

LOCAL_NOTE = (
    "a real model: SmolLM2-135M-Instruct, 135M parameters, bundled with Keel and running on this CPU (no key, no "
    "server). Its replies are grammar-constrained to the registered tools or a final answer. It is small and "
    "fallible: expect terse, sometimes wrong answers, which is what Keel's bounds and checks are for."
)
SCRIPTED_NOTE = (
    "scripted (keel.testing.ScriptedModel): a fixed script stands in for the model, so the model's words are "
    "canned. The tool calls, the budget, the journal and the accounting below are real."
)

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="MODEL",
        help="Run the agent on this model, e.g. openai:gpt-4o-mini or local:/path/model.gguf. Default: local:default.",
        show_default=False,
    ),
]
ScriptedOption = Annotated[
    bool, typer.Option("--scripted", help="Use a fixed script instead of a model (instant, deterministic).")
]


def _choose_model(console: Console, model: str | None, scripted: bool, desk: SupportDesk) -> tuple[Model, str]:
    """The model to run and what to say about it."""
    if scripted:
        return scripted_model(desk), SCRIPTED_NOTE
    if model is not None:
        chosen = infer_model(model)
        return chosen, LOCAL_NOTE if model == DEFAULT_DEMO_MODEL else "a real model, as named with --model."
    try:
        return infer_model(DEFAULT_DEMO_MODEL), LOCAL_NOTE
    except MissingDependencyError:
        console.print(
            Text(
                f"The embedded model needs Keel's local extra ({INSTALL_HINT}; `make demo` installs it). "
                "Running the scripted stand-in instead.",
                style="yellow",
            )
        )
        return scripted_model(desk), SCRIPTED_NOTE


def demo_command(store: StoreOption = None, model: ModelOption = None, scripted: ScriptedOption = False) -> None:
    """Replay four production failures and watch Keel stop each, then run a live support-desk agent (no key)."""
    if scripted and model is not None:
        fail("--scripted and --model exclude each other: a script stands in for the model", EXIT_USAGE)
    console = out_console()
    try:
        _demo(console, store, model, scripted)
    except KeyboardInterrupt:
        console.print()
        console.print(
            Text(
                "Interrupted. Every run so far is in the journal, the one cut short recorded as cancelled: "
                "`keel runs` lists them. Run `keel demo` again to start over.",
                style="yellow",
            )
        )
        raise typer.Exit(130) from None


def _demo(console: Console, store: str | None, model: str | None, scripted: bool) -> None:
    with keel_errors(), using_store(store) as opened:
        session = f"demo-{uuid.uuid4().hex[:8]}"
        tally = replay_weeks(console, opened, session)
        console.print()
        desk = SupportDesk.load()
        chosen, note = _choose_model(console, model, scripted, desk)
        agent = build_agent(chosen, store=opened, desk=desk)
        intro = Text()
        intro.append("model  ", style="bold")
        intro.append(f"{chosen.name}: ", style="bold")
        intro.append(note + "\n", style="yellow")
        intro.append("tools  ", style="bold")
        intro.append(", ".join(f"{t.name} ({t.severity})" for t in agent.tools) + "\n")
        intro.append("store  ", style="bold")
        intro.append(opened.url + "\n")
        intro.append("task   ", style="bold")
        intro.append(DEMO_TASK)
        console.print(Panel(intro, title="Live · the support desk", title_align="left", border_style="cyan"))
        result = run_async(observed_run(agent, DEMO_TASK, session_id="demo", store=None, console=console))
        tally.add(result)
        _totals(console, tally)
        show_result(console, result, store=opened, store_flag=store_flag(opened, store))
    raise typer.Exit(exit_code(result.status))


def _totals(console: Console, tally: Tally) -> None:
    """What the demo added up to: runs, tokens, money, and what Keel stopped."""
    runs = {r.run_id: r for r in tally.runs}
    tokens = sum(r.usage.total_tokens for r in runs.values())
    cost = sum(r.usage.cost_usd for r in runs.values())
    stopped = tally.summary()
    console.print()
    console.print(Text.assemble(("In all: ", "bold"), f"{len(runs)} runs, {tokens:,} tokens, {money(cost)}."))
    console.print(Text.assemble(("Stopped by Keel: ", "bold"), stopped, "."))
    console.print(
        Text.assemble(("Look deeper: ", "bold"), "keel runs · keel trace RUN_ID · keel cost · keel dashboard")
    )
