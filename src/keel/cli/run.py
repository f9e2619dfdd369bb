"""``keel run MODULE:AGENT "task"``: import an agent from your code and run it, showing each step."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.text import Text

from keel.agent import Agent
from keel.store import open_store

from ._common import (
    EXIT_USAGE,
    StoreOption,
    exit_code,
    fail,
    keel_errors,
    out_console,
    run_async,
    store_flag,
)
from ._progress import observed_run, show_result

__all__ = ["import_module", "load_agent", "run_command"]


def _import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file as Python runs a script: its directory importable, its stem as module name."""
    path = path.resolve()
    if not path.is_file():
        raise ImportError(f"no such file: {path}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path:
            return loaded
        raise ImportError(f"a different module named {name!r} is already imported; rename {path.name}")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_module(name: str) -> ModuleType:
    """Import `name` (a dotted module, or a ``.py`` file) with the current directory importable."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if name.endswith(".py"):
            return _import_file(Path(name))
        return importlib.import_module(name)
    except SystemExit as exc:  # a script that runs itself on import: the CLI must not exit with its status
        fail(
            f"importing {name!r} exited (SystemExit: {exc.code!r}); a module that `keel run` imports must define "
            'its agent and run nothing itself: put its own runs under `if __name__ == "__main__":`',
            EXIT_USAGE,
        )
    except Exception as exc:  # whatever stops the import, the user must fix their module or the name
        where = ""
        frames = traceback.extract_tb(exc.__traceback__)
        if not isinstance(exc, ImportError | SyntaxError) and frames:
            where = f" (at {frames[-1].filename}:{frames[-1].lineno})"
        fail(f"cannot import {name!r}: {type(exc).__name__}: {exc}{where}", EXIT_USAGE)


def _only_agent(module: ModuleType, name: str) -> Agent:
    found = {key: value for key, value in vars(module).items() if isinstance(value, Agent)}
    if len(found) == 1:
        return next(iter(found.values()))
    listed = ", ".join(sorted(found)) or "none"
    fail(f"name the agent as {name}:AGENT (agents defined in {name!r}: {listed})", EXIT_USAGE)


def load_agent(target: str) -> Agent:
    """The `Agent` named by ``module:attribute`` (or ``path/to/file.py:attribute``); exits 2 when there is none.

    Without ``:attribute`` the module's only top-level agent is used.
    """
    module_name, colon, attribute = target.rpartition(":")
    if not colon or any(sep in attribute for sep in "/\\"):  # no attribute, or a Windows drive letter
        module_name, attribute = target, ""
    if not module_name:
        fail(f"expected MODULE:AGENT, got {target!r}", EXIT_USAGE)
    module = import_module(module_name)
    if not attribute:
        return _only_agent(module, module_name)
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            fail(f"{module_name!r} has no attribute {attribute!r}", EXIT_USAGE)
    if not isinstance(found, Agent):
        fail(f"{target} is a {type(found).__name__}, not a keel.Agent", EXIT_USAGE)
    return found


def run_command(
    target: Annotated[
        str, typer.Argument(metavar="MODULE:AGENT", help="Where the agent is, e.g. myapp.agents:support.")
    ],
    task: Annotated[str, typer.Argument(help="The task, in words.")],
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Session id the run belongs to.", show_default=False)
    ] = None,
    store: StoreOption = None,
) -> None:
    """Run an agent on a task, showing each step as it happens.

    Exit code: 0 completed, 3 partial, escalated or rejected, 1 failed, 2 usage error.
    """
    if not task.strip():
        fail("the task is empty", EXIT_USAGE)
    agent = load_agent(target)
    console = out_console()
    with keel_errors():
        opened = open_store(store) if store is not None else None
        try:
            used = opened if opened is not None else agent.store
            console.print(
                Text.assemble(("agent ", "bold"), f"{agent.name} · model {agent.model.name} · store {used.url}")
            )
            result = run_async(observed_run(agent, task, session_id=session, store=used, console=console))
            show_result(console, result, store=used, store_flag=store_flag(used, store))
        finally:
            if opened is not None:
                opened.close()
    raise typer.Exit(exit_code(result.status))
