"""``keel dashboard``: serve the web dashboard (O4) over a store: pages, the JSON API, live updates, /metrics."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.text import Text

from keel.errors import MissingDependencyError

from ._common import StoreOption, existing_store, keel_errors, out_console

__all__ = ["dashboard_command"]


def dashboard_command(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind. Beyond 127.0.0.1 a token (KEEL_DASHBOARD_TOKEN) is required."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8765,
    store: StoreOption = None,
) -> None:
    """Serve the dashboard: runs, costs, latency and error rates live, decision traces, the review queue.

    Binds 127.0.0.1 by default. Set KEEL_DASHBOARD_TOKEN to require a token on every request (mandatory for any
    other bind): open the printed address with ?token=… once, or send `Authorization: Bearer …`. Prometheus
    metrics are at /metrics, the JSON API under /api/ (described at /api/openapi.json). Ctrl-C stops it.
    """
    token = os.environ.get("KEEL_DASHBOARD_TOKEN") or None
    with keel_errors():
        try:
            from keel.server import serve
            from keel.server.app import check_bind
        except ImportError as exc:
            raise MissingDependencyError(
                f"the dashboard needs the 'dashboard' extra ({exc.name} is missing): "
                "pip install 'keel-agents[dashboard]'"
            ) from None
        check_bind(host, token)  # before anything is printed or opened
        with existing_store(store) as used:
            shown = "[::1]" if host == "::1" else host
            console = out_console()
            console.print(
                Text.assemble(("Keel dashboard ", "bold"), f"http://{shown}:{port}/", f"  ·  store {used.url}")
            )
            if token:
                console.print("A token is required: open the address with ?token=$KEEL_DASHBOARD_TOKEN once.")
            console.print("Ctrl-C stops it.", style="dim")
            serve(used, host=host, port=port, token=token)
