"""``keel resume RUN_ID``: continue a run that paused for a person, once its review items are decided.

The agent is found where the run recorded it was defined (its module, or its script file), or named with
``--agent MODULE:AGENT`` as for ``keel run``. The run's own store is used: ``--store``, else the named agent's
store, else the default one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from keel.agent import Agent
from keel.result import RunResult
from keel.store.base import Store

from ._common import (
    EXIT_USAGE,
    StoreOption,
    existing_store,
    exit_code,
    fail,
    keel_errors,
    out_console,
    run_async,
    store_flag,
)
from ._progress import observed, show_result
from .run import import_module, load_agent

__all__ = ["resume_command"]


def _recorded_agent(store: Store, run_id: str) -> Agent:
    """The agent of `run_id`, imported from where its `run_started` event says it was defined."""
    row = run_async(store.get_run(run_id))
    events = run_async(store.events(run_id))
    where = events[0].payload.get("defined_in") if events else None
    hint = f"name it with --agent MODULE:AGENT (the agent is {row.agent!r})"
    if not isinstance(where, dict) or not where.get("module"):
        fail(f"run {run_id} does not record where its agent was defined; {hint}", EXIT_USAGE)
    if where["module"] == "__main__":  # importing a script would run it again, and with it a new run
        script = f" ({where['file']})" if where.get("file") else ""
        fail(f"run {run_id}'s agent was defined in a script{script}; {hint}", EXIT_USAGE)
    module_name = _importable(where["module"], where.get("file"))
    if module_name is None:
        fail(f"cannot import {where['module']!r}, where run {run_id}'s agent was defined; {hint}", EXIT_USAGE)
    module = import_module(module_name)
    found = [value for value in vars(module).values() if isinstance(value, Agent) and value.name == row.agent]
    if len(found) != 1:
        many = "several agents" if found else "no top-level agent"
        fail(f"{module_name!r} has {many} named {row.agent!r}; {hint}", EXIT_USAGE)
    return found[0]


def _importable(module: str, file: str | None) -> str | None:
    """How to import the agent's module: by name when that finds the recorded file, else by its file."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and (file is None or _same_file(spec.origin, file)):
        return module
    return file if file is not None and Path(file).is_file() else None


def _same_file(a: str | None, b: str) -> bool:
    try:
        return a is not None and Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def resume_command(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The escalated or interrupted run, as `keel runs` shows it.")
    ],
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            metavar="MODULE:AGENT",
            help="The run's agent, when it cannot be found where the run says it was defined.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Take over a run marked running whose process Keel cannot check (another host)."),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Continue an escalated run once its review items are decided, or a run whose process died.

    Approved actions run (once), denied ones are reported to the model, and the run goes on to its end or its
    next pause. A run interrupted by a crash goes on from its journal; a side effect it had started waits for a
    person unless it is safe to issue again. `keel runs --interrupted` lists such runs.

    Exit code: 0 completed, 3 partial, escalated or rejected, 1 failed, 2 usage error (unknown run, a review
    still pending, a finished run, a run still running).
    """
    named = load_agent(agent) if agent is not None else None
    console = out_console()
    with keel_errors():
        if store is None and named is not None:
            used = named.store
            result = _resume(named, run_id, used, console, force)
            show_result(console, result, store=used, store_flag=store_flag(used, store))
        else:
            with existing_store(store) as used:
                chosen = named or _recorded_agent(used, run_id)
                result = _resume(chosen, run_id, used, console, force)
                show_result(console, result, store=used, store_flag=store_flag(used, store))
    raise typer.Exit(exit_code(result.status))


def _resume(agent: Agent, run_id: str, store: Store, console: Console, force: bool) -> RunResult:
    console.print(Text.assemble(("resuming ", "bold"), f"{run_id} · agent {agent.name} · model {agent.model.name}"))
    return run_async(observed(agent, lambda watched: watched.resume(run_id, force=force), store=store, console=console))
