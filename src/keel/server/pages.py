"""The dashboard's HTML pages, rendered on the server from the same models the API returns.

A page asked for with ``X-Keel-Fragment: 1`` returns only its content: the live script refetches it whenever the
store changes, so pages update without a reload and without templates in the browser.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from keel.errors import QueryError

from .actions import decide
from .api import openapi
from .charts import bar_chart
from .models import ReviewsPage
from .overview import WINDOWS, agents_page, overview
from .runs import RunFilters, review_entry, run_detail, runs_page, whole
from .state import app_state, review_filter, window_of

__all__ = ["page_routes", "render"]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _money(usd: float | None) -> str:
    if usd is None:
        return "—"
    if usd == 0:
        return "$0"
    return f"${usd:,.4f}" if usd < 10 else f"${usd:,.2f}"


def _when(ts: float | None) -> str:
    return "" if not ts else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.1f} s"


_ENV.filters.update(
    money=_money,
    when=_when,
    seconds=_seconds,
    pct=lambda share: f"{share * 100:.1f}%",
    num=lambda n: f"{n:,}",
    ms=lambda ms: f"{ms:,.1f} ms",
)
_ENV.globals.update(bar_chart=bar_chart, windows=list(WINDOWS), money_fmt=_money, count_fmt=lambda n: f"{n:,.0f}")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render `template` as a full page, or only its content for the live script."""
    state = app_state(request)
    fragment = request.headers.get("x-keel-fragment") == "1"
    html = _ENV.get_template(template).render(
        fragment=fragment,
        csrf=state.guard.csrf,
        path=request.url.path,
        here=_here(request),
        store_url=state.store.url,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def _overview(request: Request) -> Response:
    data = await overview(app_state(request).store, window_of(request))
    return render(request, "overview.html", page="overview", data=data)


async def _runs(request: Request) -> Response:
    filters = RunFilters(request.query_params)
    data = await runs_page(app_state(request).store, filters)
    kept = filters.as_dict()
    newer = max(0, data.offset - data.limit)
    links = {
        "newer": f"?{urlencode({**kept, 'offset': newer})}" if data.offset > 0 else None,
        "older": f"?{urlencode({**kept, 'offset': data.offset + data.limit})}"
        if data.offset + data.limit < data.total
        else None,
    }
    return render(request, "runs.html", page="runs", data=data, links=links)


async def _run(request: Request) -> Response:
    state = app_state(request)
    run_id = request.path_params["run_id"]
    data = await run_detail(state.store, run_id, after=whole(request.query_params.get("after"), "after"))
    resume = state.launcher.status(run_id) if state.launcher is not None else None
    return render(request, "run.html", page="runs", data=data, resume=resume, can_resume=state.launcher is not None)


async def _reviews(request: Request) -> Response:
    store = app_state(request).store
    status = review_filter(request)
    items = await store.list_reviews(status=status, limit=500)
    pending = await store.list_reviews(status="pending", limit=10_000)
    data = ReviewsPage(items=[review_entry(i) for i in items], pending=len(pending))
    return render(request, "reviews.html", page="reviews", data=data, status=status or "all")


async def _agents(request: Request) -> Response:
    data = await agents_page(app_state(request).store, window_of(request))
    return render(request, "agents.html", page="agents", data=data)


async def _api_docs(request: Request) -> Response:
    return render(request, "api.html", page="api", spec=openapi())


async def _decide(request: Request) -> Response:
    form = await request.form()
    action = request.path_params["action"]
    if action not in ("approve", "deny"):
        raise QueryError(f"no such action {action!r}: approve or deny")
    await decide(
        app_state(request).store,
        request.path_params["review_id"],
        "approved" if action == "approve" else "denied",
        by=str(form.get("by") or "dashboard")[:100],
        note=str(form.get("note") or "")[:2000],
    )
    return RedirectResponse(_local(str(form.get("next") or "/reviews")), status_code=303)


async def _resume(request: Request) -> Response:
    state = app_state(request)
    run_id = request.path_params["run_id"]
    state.start_resume(await run_detail(state.store, run_id))
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


def _local(target: str) -> str:
    """`target` if it is a path on this site, else the review queue: a form cannot send anyone elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/reviews"
    return target


def page_routes() -> list[Route]:
    """The pages' routes."""
    return [
        Route("/", _overview),
        Route("/runs", _runs),
        Route("/runs/{run_id}", _run),
        Route("/runs/{run_id}/resume", _resume, methods=["POST"]),
        Route("/reviews", _reviews),
        Route("/reviews/{review_id}/{action:str}", _decide, methods=["POST"]),
        Route("/agents", _agents),
        Route("/api", _api_docs),
    ]
