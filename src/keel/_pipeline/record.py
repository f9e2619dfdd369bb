"""Record: number the run's next event and commit it to the journal (store first, then the in-memory copy)."""

from __future__ import annotations

import time
from typing import Any

from keel._pipeline.state import RunState
from keel.journal import Event, EventKind, Phase

__all__ = ["next_event", "record"]


def next_event(
    state: RunState,
    kind: EventKind,
    payload: dict[str, Any],
    *,
    phase: Phase | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: float = 0.0,
    latency_ms: float = 0.0,
) -> Event:
    """The run's next event, numbered; the caller commits it (`record`, or with the runs row in `finish`)."""
    state.seq += 1
    return Event(
        run_id=state.spec.run_id,
        seq=state.seq,
        kind=kind,
        phase=phase or state.phase,
        payload=payload,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        ts=time.time(),
    )


async def record(
    state: RunState,
    kind: EventKind,
    payload: dict[str, Any],
    *,
    phase: Phase | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: float = 0.0,
    latency_ms: float = 0.0,
) -> Event:
    """Append an event and return it; it is committed to the store before this returns."""
    event = next_event(
        state,
        kind,
        payload,
        phase=phase,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
    )
    await state.spec.store.append(event)
    state.events.append(event)
    return event
