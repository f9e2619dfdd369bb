"""The dashboard's JSON API under ``/api/``: what every page shows, as data, described by an OpenAPI document.

Each endpoint returns one model of `keel.server.models` (the same the HTML page renders), or ``{"error": …}``
with 400 (a malformed filter), 404 (an unknown run or review item), 409 (a decision that lost or a run that
cannot be resumed) or 503 (the store cannot be read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keel import __version__
from keel.errors import QueryError
from keel.store.base import Decision

from . import actions
from .models import AgentsPage, Overview, ReviewEntry, ReviewsPage, RunDetail, RunsPage
from .overview import WINDOWS, agents_page, overview
from .runs import RunFilters, review_entry, run_detail, runs_page, whole
from .state import app_state, review_filter, window_of

__all__ = ["api_routes", "openapi"]


async def _overview(request: Request) -> Response:
    state = app_state(request)
    return _json(await overview(state.store, window_of(request)))


async def _runs(request: Request) -> Response:
    return _json(await runs_page(app_state(request).store, RunFilters(request.query_params)))


async def _run(request: Request) -> Response:
    after = whole(request.query_params.get("after"), "after")
    return _json(await run_detail(app_state(request).store, request.path_params["run_id"], after=after))


async def _reviews(request: Request) -> Response:
    state = app_state(request)
    status = review_filter(request)
    items = await state.store.list_reviews(status=status, limit=500)
    pending = await state.store.list_reviews(status="pending", limit=10_000)
    return _json(ReviewsPage(items=[review_entry(i) for i in items], pending=len(pending)))


async def _decide(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in ("approve", "deny"):
        return JSONResponse({"error": f"no such action {action!r}: approve or deny"}, status_code=404)
    body = await _body(request)
    decision: Decision = "approved" if action == "approve" else "denied"
    item = await actions.decide(
        app_state(request).store,
        request.path_params["review_id"],
        decision,
        by=str(body.get("by") or "dashboard")[:100],
        note=str(body.get("note") or "")[:2000],
    )
    return _json(review_entry(item))


async def _resume(request: Request) -> Response:
    state = app_state(request)
    run_id = request.path_params["run_id"]
    detail = await run_detail(state.store, run_id)
    state.start_resume(detail)
    return JSONResponse({"run_id": run_id, "resuming": True}, status_code=202)


async def _agents(request: Request) -> Response:
    return _json(await agents_page(app_state(request).store, window_of(request)))


async def _openapi(request: Request) -> Response:
    return JSONResponse(openapi())


async def _body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise QueryError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise QueryError("the request body must be a JSON object")
        return body
    return dict(await request.form())


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


@dataclass(frozen=True, slots=True)
class _Endpoint:
    method: str
    path: str
    summary: str
    response: type[BaseModel] | None
    params: tuple[tuple[str, str, dict[str, Any]], ...] = field(default=())
    """(name, in, schema) of each parameter."""
    body: dict[str, Any] | None = None
    """The JSON schema of the request body, when it takes one."""


_DECISION = {
    "type": "object",
    "properties": {
        "by": {"type": "string", "description": "Who decides (cut to 100 characters; default: dashboard)"},
        "note": {"type": "string", "description": "Why (cut to 2000 characters)"},
    },
}
_WINDOW = ("window", "query", {"type": "string", "enum": list(WINDOWS), "default": "24h"})
_RUN_ID = ("run_id", "path", {"type": "string"})
_ENDPOINTS = (
    _Endpoint("get", "/api/overview", "Runs, cost, latency, error, escalation and cache figures", Overview, (_WINDOW,)),
    _Endpoint(
        "get",
        "/api/runs",
        "Runs, most recent first, filtered and paged",
        RunsPage,
        (
            (
                "status",
                "query",
                {"type": "string", "enum": ["completed", "partial", "escalated", "rejected", "failed", "running"]},
            ),
            ("agent", "query", {"type": "string"}),
            ("session", "query", {"type": "string"}),
            ("since", "query", {"type": "string", "description": "A duration: 90s, 30m, 24h, 7d"}),
            ("offset", "query", {"type": "integer", "minimum": 0, "default": 0}),
            ("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
        ),
    ),
    _Endpoint(
        "get",
        "/api/runs/{run_id}",
        "A run: decision trace (paged), tool calls, tokens by phase and model, status report, review items",
        RunDetail,
        (_RUN_ID, ("after", "query", {"type": "integer", "minimum": 0, "default": 0})),
    ),
    _Endpoint(
        "post", "/api/runs/{run_id}/resume", "Resume an escalated run whose review items are decided", None, (_RUN_ID,)
    ),
    _Endpoint(
        "get",
        "/api/reviews",
        "The review queue",
        ReviewsPage,
        (
            (
                "status",
                "query",
                {"type": "string", "enum": ["pending", "approved", "denied", "all"], "default": "pending"},
            ),
        ),
    ),
    _Endpoint(
        "post",
        "/api/reviews/{review_id}/approve",
        "Approve a pending review item",
        ReviewEntry,
        (("review_id", "path", {"type": "string"}),),
        _DECISION,
    ),
    _Endpoint(
        "post",
        "/api/reviews/{review_id}/deny",
        "Deny a pending review item",
        ReviewEntry,
        (("review_id", "path", {"type": "string"}),),
        _DECISION,
    ),
    _Endpoint("get", "/api/agents", "Agents and their spend", AgentsPage, (_WINDOW,)),
)


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API, with the response schemas pydantic derives from the models."""
    models = [e.response for e in _ENDPOINTS if e.response is not None]
    _, schemas = models_json_schema(
        [(m, "serialization") for m in dict.fromkeys(models)], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for e in _ENDPOINTS:
        ok: dict[str, Any] = {"description": "OK"}
        if e.response is not None:
            ref = {"$ref": f"#/components/schemas/{e.response.__name__}"}
            ok["content"] = {"application/json": {"schema": ref}}
        operation: dict[str, Any] = {
            "summary": e.summary,
            "parameters": [
                {"name": name, "in": where, "required": where == "path", "schema": schema}
                for name, where, schema in e.params
            ],
            "responses": {"202" if e.response is None else "200": ok, **_ERRORS},
        }
        if e.body is not None:
            operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": e.body}}}
        if e.method == "post":
            operation["description"] = "Send `Authorization: Bearer <token>`, or the page's `X-CSRF-Token` header."
        paths.setdefault(e.path, {})[e.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Keel dashboard API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
    }


_ERROR = {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}
_ERRORS = {
    code: {"description": text, "content": _ERROR}
    for code, text in (
        ("400", "A malformed parameter"),
        ("401", "A missing or wrong token"),
        ("404", "No such run or review item"),
        ("409", "Already decided, or not resumable"),
        ("503", "The store cannot be read"),
    )
}


def api_routes() -> list[Route]:
    """The API's routes."""
    return [
        Route("/api/overview", _overview),
        Route("/api/runs", _runs),
        Route("/api/runs/{run_id}", _run),
        Route("/api/runs/{run_id}/resume", _resume, methods=["POST"]),
        Route("/api/reviews", _reviews),
        Route("/api/reviews/{review_id}/{action:str}", _decide, methods=["POST"]),
        Route("/api/agents", _agents),
        Route("/api/openapi.json", _openapi),
    ]
