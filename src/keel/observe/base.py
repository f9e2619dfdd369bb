"""`Observer`: something that watches a run's journal as it is written (OpenTelemetry export, live views).

The journal stays the one record; an observer only sees each event once it is committed, in order, with the run
it belongs to. Observers are called synchronously on the run's task, so they must be cheap (hand slow work to a
background exporter, as OpenTelemetry's batch processor does), and an observer that raises is logged and
ignored: telemetry never breaks a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from keel.journal import Event

__all__ = ["Observer", "RunInfo", "notify"]

_log = logging.getLogger("keel.observe")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run an observed event belongs to."""

    run_id: str
    agent: str
    model: str
    """The agent's model (a fallback model is named on its own `model_called` events)."""
    session_id: str | None = None
    user: str | None = None


@runtime_checkable
class Observer(Protocol):
    """Receives every committed journal event of the runs it observes."""

    def on_event(self, event: Event, run: RunInfo) -> None:
        """Called once per event, in journal order, after the event is committed."""
        ...


def notify(observers: tuple[Observer, ...], event: Event, run: RunInfo) -> None:
    """Hand `event` to each observer; one that raises is logged, never propagated."""
    for observer in observers:
        try:
            observer.on_event(event, run)
        except Exception:  # telemetry must not break a run
            _log.exception("observer %r failed on %s #%d of %s", observer, event.kind.value, event.seq, run.run_id)
