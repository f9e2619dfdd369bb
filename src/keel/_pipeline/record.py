"""Record: append one event to the run's journal (store first, then the in-memory copy)."""

from __future__ import annotations

import time
from typing import Any

from keel._pipeline.state import RunState
from keel.journal import Event, EventKind, Phase

__all__ = ["record"]


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
    state.seq += 1
    event = Event(
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
    await state.spec.store.append(event)
    state.events.append(event)
    return event
