"""The governed loop: propose → validate → authorize → execute → record, until the run finishes.

This function only wires the steps; each step lives in its own module. Every iteration takes one model
turn, and `propose` refuses a turn past the step, time or spending budget, so the loop always ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import assert_never

from keel._pipeline.act import act
from keel._pipeline.conclude import conclude
from keel._pipeline.failure import describe
from keel._pipeline.finish import finish, start
from keel._pipeline.guard import screen_task
from keel._pipeline.propose import propose
from keel._pipeline.salvage import best_effort, salvageable
from keel._pipeline.state import Finish, RunSpec, RunState
from keel.models.base import ModelResponse
from keel.result import RunResult, RunStatus

__all__ = ["drive_to_end", "run_pipeline"]


async def _drive(state: RunState) -> Finish:
    while True:
        turn = await propose(state)
        match turn:
            case Finish():
                return turn
            case ModelResponse(tool_calls=calls) if calls:
                end = await act(state, calls, confidence=turn.confidence)
            case ModelResponse():
                end = await conclude(state, turn)
            case _:
                assert_never(turn)
        if end is not None:
            return end


async def drive_to_end(state: RunState, first: Callable[[], Awaitable[Finish | None]]) -> RunResult:
    """Take the `first` step, then model turns until the run ends; finish it (journaled) whatever happens."""
    try:
        end = await first() or await _drive(state)
        if salvageable(state, end):
            end = await best_effort(state, end)
    except BaseException as exc:
        # Cancelled from outside (asyncio.wait_for, Ctrl-C in run_sync), a configuration error (model requests
        # disabled in tests, missing credentials) or the store failing: the journal still says how the run ended
        # (when the store can take it), then the exception goes on to the caller. A model's or a tool's own
        # failures never get here: they are failed calls (see `failure`).
        if isinstance(exc, asyncio.CancelledError):
            reason = "cancelled before it finished"
        elif isinstance(exc, KeyboardInterrupt):
            reason = "interrupted (KeyboardInterrupt) before it finished"
        else:
            reason = describe(exc)
        await asyncio.shield(finish(state, Finish(RunStatus.FAILED, reason)))
        raise
    return await finish(state, end)


async def run_pipeline(spec: RunSpec) -> RunResult:
    """Run an agent task to its end and return the result; journaled throughout."""
    state = await start(spec)
    return await drive_to_end(state, lambda: screen_task(state))
