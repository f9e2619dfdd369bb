"""Start and finish a run: the `run_started` and `run_finished` events, the runs row, the status report."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from pydantic import BaseModel

from keel._pipeline.guard import judge_output
from keel._pipeline.record import committed, next_event
from keel._pipeline.state import UNSET, Finish, RunSpec, RunState
from keel.cost.tiers import ModelTiers
from keel.journal import EventKind
from keel.models.base import UserMessage
from keel.recovery.owner import ProcessOwner
from keel.result import RunReport, RunResult, RunStatus
from keel.store.base import RunRecord

__all__ = ["finish", "start"]


async def start(spec: RunSpec) -> RunState:
    """Create the run's row and its first event."""
    row = RunRecord(
        run_id=spec.run_id,
        agent=spec.agent,
        task=spec.task,
        model=spec.model.name,
        session_id=spec.session_id,
        started_at=time.time(),
    )
    state = RunState(spec=spec, messages=[UserMessage(spec.task)], row=row)
    event = next_event(
        state,
        EventKind.RUN_STARTED,
        {
            "agent": spec.agent,
            "task": spec.task,
            "session_id": spec.session_id,
            "model": spec.model.name,
            "instructions": spec.instructions,
            "tools": list(spec.registry.names),
            "budget": _fields(spec.budget),
            "output_schema": spec.output_type.__name__ if spec.output_type is not None else None,
            "user": spec.user,
            "defined_in": spec.defined_in,
            "owner": ProcessOwner.current().as_payload(),
            "limits": [{"key": key, **limit.as_payload()} for limit, key in spec.spend_limits],
            **_tier_map(spec),
        },
    )
    await spec.store.create_run(row, event)
    committed(state, event)
    state.informed_by = [event.seq]
    return state


def _tier_map(spec: RunSpec) -> dict[str, Any]:
    """A tiered run's tiers (name → model and list price): a cost report prices its calls on the large one."""
    if not isinstance(spec.model, ModelTiers):
        return {}
    tiers: dict[str, Any] = {}
    for tier in spec.model.tiers:
        price = tier.model.price
        per_million = None if price is None else [price.input, price.output]
        tiers[tier.name] = {"model": tier.model.name, "price": per_million}
    return {"tiers": tiers}


def _fields(obj: Any) -> dict[str, Any]:
    """A flat dataclass as a dict (`dataclasses.asdict` deep-copies, which costs more than the write)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _best_output(state: RunState) -> Any:
    """What a run that did not finish can still offer: its last text, else its latest tool result."""
    if state.last_text is not None:
        return state.last_text
    if state.tool_results:
        return state.tool_results[-1]
    return None


def _jsonable(output: Any) -> Any:
    return output.model_dump(mode="json") if isinstance(output, BaseModel) else output


async def _guarded_best_output(state: RunState) -> Any:
    """The best output of an unfinished run, through the output guards like any answer (a block leaves None)."""
    best = _best_output(state)
    if not isinstance(best, str) or not state.spec.output_guards:
        return best
    judged = await judge_output(state, best)
    return judged if isinstance(judged, str) else None  # blocked, or held for a person


async def finish(state: RunState, end: Finish) -> RunResult:
    """Record how the run ended and build its result."""
    spec = state.spec
    output = await _guarded_best_output(state) if end.output is UNSET else end.output
    not_done = (*state.not_done, *end.not_done)
    if end.status is not RunStatus.COMPLETED and not end.not_done:
        not_done = (*not_done, "final answer")
    usage = state.usage
    report = RunReport(
        reason=end.reason,
        done=tuple(state.done),
        not_done=not_done,
        steps=state.steps,
        total_tokens=usage.total_tokens,
        cost_usd=round(usage.cost_usd, 10),
        resume=f"keel resume {spec.run_id}" if end.status is RunStatus.ESCALATED else None,
    )
    report_dict = _fields(report)
    output_json = _jsonable(output)
    event = next_event(
        state,
        EventKind.RUN_FINISHED,
        {"status": end.status.value, "reason": end.reason, "output": output_json, "report": report_dict},
        latency_ms=round((time.monotonic() - state.started) * 1000, 3),  # the run's working time, pauses excluded
    )
    row = dataclasses.replace(
        state.row,
        status=end.status,
        finished_at=event.ts,
        steps=state.steps,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        output=output_json,
        report=report_dict,
        reason=end.reason,
    )
    await spec.store.finish_run(row, event)
    committed(state, event)
    return RunResult(
        run_id=spec.run_id, status=end.status, output=output, report=report, usage=usage, events=state.events
    )
