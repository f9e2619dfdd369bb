"""What every request of the dashboard shares: the store, the guard, the resumptions it started; query parsing."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from keel.errors import QueryError, ResumeError
from keel.store.base import ReviewStatus, Store

from .actions import ResumeLauncher
from .models import RunDetail
from .overview import WINDOWS
from .security import Guard

__all__ = ["AppState", "app_state", "review_filter", "window_of"]


@dataclass
class AppState:
    """The dashboard's shared state (``request.app.state.keel``)."""

    store: Store
    guard: Guard
    launcher: ResumeLauncher | None
    """None when runs cannot be resumed from here (an in-memory store lives in another process's memory)."""
    live_interval_s: float = 1.0
    """How often the live stream polls the store for changes."""
    live_max_s: float = 300.0
    """How long one live stream lasts; the browser reconnects by itself (every loop is bounded)."""

    def start_resume(self, detail: RunDetail) -> None:
        """Resume the run shown by `detail` in a child process; `ResumeError` when it cannot be resumed."""
        if self.launcher is None:
            raise ResumeError(f"runs in {self.store.url} cannot be resumed from the dashboard: use agent.resume()")
        if not detail.resumable:
            raise ResumeError(
                f"run {detail.run.run_id} is {detail.run.status}: only an escalated run whose review items are all "
                "decided can be resumed"
            )
        self.launcher.start(detail.run.run_id)


def app_state(request: Request) -> AppState:
    """The `AppState` of the app serving `request`."""
    state: AppState = request.app.state.keel
    return state


def window_of(request: Request) -> str:
    """The ``window`` query parameter (default 24h); `QueryError` for one the pages do not offer."""
    window = request.query_params.get("window") or "24h"
    if window not in WINDOWS:
        raise QueryError(f"window must be one of {', '.join(WINDOWS)}; got {window!r}")
    return window


def review_filter(request: Request) -> ReviewStatus | None:
    """The review queue's ``status`` filter: pending (default), approved, denied, or all (None)."""
    status = request.query_params.get("status") or "pending"
    if status == "all":
        return None
    if status not in ("pending", "approved", "denied"):
        raise QueryError(f"status must be pending, approved, denied or all; got {status!r}")
    return status  # type: ignore[return-value]  # checked against the literal's values just above
