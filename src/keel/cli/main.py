"""The ``keel`` command: the typer app and its wiring; each command lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from keel import __version__

from .cost import cost_command
from .dashboard import dashboard_command
from .demo import demo_command
from .inspect import runs_command, trace_command
from .resume import resume_command
from .review import review_app
from .run import run_command
from .tool_log import tools_command
from .usage import usage_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="keel",
    help="Keel: a runtime for AI agents that behave in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold API keys and customer data
)
app.command("demo")(demo_command)
app.command("run")(run_command)
app.command("runs")(runs_command)
app.command("resume")(resume_command)
app.command("trace")(trace_command)
app.command("usage")(usage_command)
app.command("cost")(cost_command)
app.command("tools")(tools_command)
app.add_typer(review_app, name="review")
app.command("dashboard")(dashboard_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"keel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print Keel's version and exit."),
    ] = False,
) -> None:
    """Keel: a runtime for AI agents that behave in production.

    Exit codes: 0 completed, 1 failed, 2 usage error, 3 partial, escalated or rejected.
    """


def main() -> None:
    """Entry point of the ``keel`` console script (and of ``python -m keel``)."""
    app(prog_name="keel")
