"""The dashboard app (O4): pages, the JSON API, the live stream and Prometheus metrics, over one store.

`create_app` wires them on Starlette; `serve` runs it with uvicorn (``keel dashboard``). Errors never reach a
user as a stack trace: a malformed filter is a 400, an unknown run a 404, a decision that lost a 409, and a store
that cannot be read a 503 page that says which store and why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from keel.errors import (
    ConfigError,
    KeelError,
    QueryError,
    ResumeError,
    ReviewError,
    StoreError,
    UnknownRunError,
    help_page,
)
from keel.observe.metrics import CONTENT_TYPE, metrics_text
from keel.store.base import Store
from keel.store.memory import MemoryStore

from .actions import ResumeLauncher, UnknownReviewError
from .api import api_routes
from .pages import page_routes, render
from .security import Guard, SecurityMiddleware, is_loopback
from .state import AppState, app_state

__all__ = ["check_bind", "create_app", "serve"]

logger = logging.getLogger("keel.server")


def create_app(
    store: Store,
    *,
    token: str | None = None,
    resume: bool = True,
    live_interval_s: float = 1.0,
    live_max_s: float = 300.0,
) -> Starlette:
    """The dashboard over `store`.

    Args:
        store: where the runs are (the dashboard reads it, and writes only review decisions).
        token: required on every request when set (``KEEL_DASHBOARD_TOKEN``); see `keel.server.security`.
        resume: offer to resume escalated runs once decided (``keel resume`` in a child process).
        live_interval_s: how often the live stream polls the store for changes.
        live_max_s: how long one live stream lasts before the browser reconnects.
    """
    launcher = ResumeLauncher(store.url) if resume and not isinstance(store, MemoryStore) else None
    state = AppState(store, Guard(token), launcher, live_interval_s, live_max_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if launcher is not None:
            launcher.close()

    app = Starlette(
        routes=[
            *page_routes(),
            *api_routes(),
            Route("/live", _live),
            Route("/metrics", _metrics),
            Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
        ],
        middleware=[Middleware(SecurityMiddleware, guard=state.guard)],
        exception_handlers={
            QueryError: _error(400),
            Exception: _error(500),
            UnknownRunError: _error(404),
            ReviewError: _error(409),
            UnknownReviewError: _error(404),
            ResumeError: _error(409),
            StoreError: _error(503),
        },
        lifespan=lifespan,
    )
    app.state.keel = state
    return app


def _error(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        message = str(exc)
        if status == 503:
            logger.warning("dashboard: store unavailable: %s", message)
            message = f"The store cannot be read right now: {message}"
        elif status == 500:  # a bug: the log gets the traceback, the page a sentence
            logger.exception("dashboard: %s %s failed", request.method, request.url.path, exc_info=exc)
            message = "Something went wrong while building this page; the dashboard's log has the details."
        if request.url.path.startswith("/api/") or request.url.path == "/metrics":
            return JSONResponse({"error": message}, status_code=status)
        help_at = help_page(exc) if isinstance(exc, KeelError) else None
        return render(
            request, "error.html", status_code=status, page="", status=status, message=message, help_at=help_at
        )

    return handler


async def _metrics(request: Request) -> Response:
    return Response(await metrics_text(app_state(request).store), media_type=CONTENT_TYPE)


async def _live(request: Request) -> Response:
    """Server-sent events: a message whenever the store changed (the page then refetches its content)."""
    state = app_state(request)

    async def changes() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        try:
            seen = await state.store.data_version()
        except StoreError:
            yield "event: unavailable\ndata: the store cannot be read\n\n"
            return
        deadline, quiet = time.monotonic() + state.live_max_s, 0.0
        while time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(state.live_interval_s)
            try:
                version = await state.store.data_version()
            except StoreError:
                yield "event: unavailable\ndata: the store cannot be read\n\n"
                return
            quiet += state.live_interval_s
            if version != seen:
                seen, quiet = version, 0.0
                yield f"data: {version}\n\n"
            elif quiet >= 15:  # a comment line keeps proxies from closing an idle stream
                quiet = 0.0
                yield ": idle\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(changes(), media_type="text/event-stream", headers=headers)


def check_bind(host: str, token: str | None) -> None:
    """`ConfigError` when `host` is reachable from other machines and no token protects the dashboard."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"the dashboard binds to {host}, which other machines can reach: set KEEL_DASHBOARD_TOKEN to a secret "
            "(every request must then carry it), or bind to 127.0.0.1"
        )


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Serve the dashboard until interrupted; `ConfigError` when bound beyond loopback without a token."""
    import uvicorn

    check_bind(host, token)
    uvicorn.run(
        create_app(store, token=token),
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=3,  # open live streams would otherwise hold a Ctrl-C for minutes
    )
