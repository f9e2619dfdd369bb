"""Record: number the run's next event and commit it to the journal (store first, then the in-memory copy)."""

from __future__ import annotations

import time
from typing import Any, TypedDict, Unpack

from keel._pipeline.state import RunState
from keel.journal import Event, EventKind, Phase
from keel.observe.base import notify

__all__ = ["Figures", "committed", "next_event", "record"]


class Figures(TypedDict, total=False):
    """The measured part of an event; all optional."""

    phase: Phase
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float


def next_event(state: RunState, kind: EventKind, payload: dict[str, Any], **figures: Unpack[Figures]) -> Event:
    """The run's next event, numbered; the caller commits it (`record`, or with the runs row in `finish`)."""
    state.seq += 1
    return Event(
        run_id=state.spec.run_id,
        seq=state.seq,
        kind=kind,
        phase=figures.get("phase", state.phase),
        payload=payload,
        tokens_in=figures.get("tokens_in", 0),
        tokens_out=figures.get("tokens_out", 0),
        cost_usd=figures.get("cost_usd", 0.0),
        latency_ms=figures.get("latency_ms", 0.0),
        ts=time.time(),
    )


def committed(state: RunState, event: Event) -> None:
    """Note an event the store has committed: the run's copy of the journal, then its observers."""
    state.events.append(event)
    if state.spec.observers:
        notify(state.spec.observers, event, state.spec.run_info)


async def record(state: RunState, kind: EventKind, payload: dict[str, Any], **figures: Unpack[Figures]) -> Event:
    """Append an event and return it; it is committed to the store before this returns.

    Concurrent tool calls record concurrently: the lock keeps numbering and committing in one order, so the
    store's journal and `RunResult.events` agree even with a store whose writes really suspend.
    """
    async with state.journal_lock:
        event = next_event(state, kind, payload, **figures)
        await state.spec.store.append(event)
        committed(state, event)
    return event
