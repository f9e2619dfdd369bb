"""Act on a model turn's tool calls: validate each, run the valid ones concurrently, record every outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import to_json

from keel._pipeline.cache import cached_tool_result, remember_tool_result
from keel._pipeline.escalate import HeldCall, denial_feedback, hold_failed_calls, hold_tool_calls
from keel._pipeline.execute import ToolOutcome, fit_result
from keel._pipeline.guard import screen_tool_output
from keel._pipeline.loop import check_step
from keel._pipeline.record import record
from keel._pipeline.recover import policy_for, run_call
from keel._pipeline.spend import hold_tool_spend
from keel._pipeline.state import Finish, RunState
from keel._pipeline.tiers import escalate_tier, step_went_right
from keel._pipeline.validate import Rejected, ValidCall, validate_call
from keel.journal import EventKind, Phase
from keel.models.base import ToolCall, ToolResultMessage
from keel.result import RunStatus
from keel.store.base import ReviewItem

__all__ = ["act", "call_summary"]


def _arguments(raw: str) -> Any:
    """The arguments for the journal: parsed when they are storable JSON, else the text the model sent."""
    try:
        parsed = json.loads(raw)
        to_json(parsed)  # a lone surrogate escape parses, yet cannot be stored
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes (rejected anyway)
        return raw
    return parsed


async def _reject(state: RunState, rejected: Rejected, *, counted: bool = True) -> ToolResultMessage:
    state.rejections += counted
    event = await record(
        state,
        EventKind.TOOL_REJECTED,
        {
            "call_id": rejected.call.id,
            "tool": rejected.call.name,
            "arguments": _arguments(rejected.call.arguments),
            "reason": rejected.reason,
            "rejections": state.rejections,
        },
    )
    state.informed_by.append(event.seq)
    return ToolResultMessage(rejected.call.id, rejected.call.name, rejected.reason, is_error=True)


async def _run(state: RunState, valid: ValidCall) -> ToolOutcome:
    """Run the call through the failure chain (each attempt journaled); the model sees its output screened.

    A result the cache has (the tool declares ``cache_ttl``) stands for the call; a fresh one is kept for later.
    """
    result = await cached_tool_result(state, valid)
    if result is None:
        result = await run_call(state, valid)
        await remember_tool_result(state, result.valid, result)
    if result.ok:  # the journal keeps what the tool returned; the model sees it screened
        shown = await screen_tool_output(state, result.valid.tool, valid.call.id, result.content)
        if shown is not result.content:
            result = dataclasses.replace(result, shown=shown)
    return result


async def _run_all(state: RunState, calls: list[ValidCall]) -> list[ToolOutcome]:
    """Run the calls concurrently; should one fail outright (a store error), the others are cancelled."""
    if len(calls) == 1:  # the common case; a task group would only add a task
        return [await _run(state, calls[0])]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_run(state, valid)) for valid in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _worst_cost(state: RunState, valid: ValidCall) -> float:
    """What a call may cost at most: every attempt of the tool and of each alternative it may fall back to.

    Paid tools are not retried unless they declare ``retry=`` (`policy_for`), so this is usually the cost of one
    attempt of each.
    """
    registry, agent_policy = state.spec.registry, state.spec.retry
    tools = [valid.tool, *(t for name in valid.tool.alternatives if (t := registry.get(name)) is not None)]
    return sum(t.cost_usd * policy_for(t, agent_policy).max_attempts for t in tools)


async def _run_paid(state: RunState, calls: list[ValidCall]) -> list[ToolOutcome] | Finish:
    """Run the calls; paid ones are first held at their worst case under the budget and limits, then charged."""
    worst = sum(_worst_cost(state, valid) for valid in calls)
    if not worst:
        return await _run_all(state, calls)
    held = await hold_tool_spend(state, worst)
    if isinstance(held, Finish):
        return held
    results: list[ToolOutcome] = []
    try:
        results = await _run_all(state, calls)
    finally:
        # Each invocation is charged, whatever its outcome: a paid API may bill a call that then failed. A
        # turn cut short (cancelled) is charged its worst case: what it invoked is unknown.
        spent = sum(r.spent_usd for r in results) if results else worst
        state.usage.add_tool_cost(state.phase, spent)
        if held is not None:
            await held.settle(spent, 0)
    return results


def _remember(state: RunState, result: ToolOutcome) -> ToolResultMessage:
    """Note the outcome for the status report and the best-effort output, in call order."""
    call = result.valid.call
    summary = call_summary(call)
    if result.ok:
        state.tool_results.append(result.content)
        if result.valid.tool.trusted:
            state.trusted_results.append(result.content)
        state.done.append(f"{summary} -> ok")
    else:
        state.not_done.append(f"{summary} -> {result.outcome}: {result.content}")
    return ToolResultMessage(call.id, call.name, fit_result(result.shown or result.content), is_error=not result.ok)


def call_summary(call: ToolCall, limit: int = 80) -> str:
    """A call in one line for the status report: ``name(arguments)``, long arguments cut."""
    arguments = call.arguments if len(call.arguments) <= limit else call.arguments[: limit - 1] + "…"
    return f"{call.name}({arguments})"


def _needing_approval(state: RunState, checked: list[ValidCall | Rejected], confidence: float | None) -> list[HeldCall]:
    policy = state.spec.escalation
    held = []
    for item in checked:
        if isinstance(item, Rejected):
            continue
        found = policy.tool_call_trigger(item.tool, tainted_by=state.tainted_by, confidence=confidence)
        if found is not None:
            trigger, reason = found
            arguments = item.args.model_dump(mode="json")
            held.append(HeldCall(item.call, arguments, item.tool.severity, reason, trigger))
    return held


def _beyond_the_bound(call: ToolCall, turn: Sequence[ToolCall], limit: int) -> Rejected:
    """A call past the turn's first `limit`: not validated, not run, answered so the model can ask again.

    The first of them carries the explanation, the others point to it: every call needs an answer, and thousands
    of long ones would stay in every later request's history.
    """
    first = turn[limit]
    if call.id != first.id:
        return Rejected(call, f"Not run: over max_tool_calls_per_step={limit} (see call {first.id}).")
    return Rejected(
        call,
        f"Not run: this turn asked for {len(turn)} tool calls, more than the {limit} one turn may make "
        f"(max_tool_calls_per_step={limit}); the first {limit} were handled. Ask for this call again in a later "
        "turn if you still need it.",
    )


def _checked(
    state: RunState, calls: Sequence[ToolCall], turn: Sequence[ToolCall]
) -> tuple[list[ValidCall | Rejected], set[str]]:
    """Each call validated, or rejected when past the turn's bound; and the rejections that do not count.

    The calls past the bound are one mistake of the model's, counted once (by the first of them), so a turn of
    thousands of calls is answered without ending the run unless the model keeps doing it.
    """
    bound = state.spec.budget.max_tool_calls_per_step
    allowed = {call.id for call in turn[:bound]}
    checked = [
        validate_call(state.spec.registry, call) if call.id in allowed else _beyond_the_bound(call, turn, bound)
        for call in calls
    ]
    return checked, {call.id for call in turn[bound + 1 :]}


def _denied(state: RunState, call: ToolCall, item: ReviewItem) -> ToolResultMessage:
    state.not_done.append(f"{call_summary(call)} -> denied by {item.decided_by}")
    return ToolResultMessage(call.id, call.name, denial_feedback(item), is_error=True)


async def act(
    state: RunState,
    calls: Sequence[ToolCall],
    *,
    confidence: float | None = None,
    decisions: Mapping[str, ReviewItem] | None = None,
    turn: Sequence[ToolCall] | None = None,
) -> Finish | None:
    """Handle one turn's tool calls; return a `Finish` when the run pauses for a person or must stop.

    A turn with a call that needs approval is held whole, before anything of it is journaled or run.
    Resuming it passes the person's `decisions` (call id → decided review item): approved and unreviewed calls
    run, denied ones are reported to the model as denied.

    Only the first ``Budget.max_tool_calls_per_step`` calls of the model's `turn` (all of it; `calls` is what
    is left of it to answer, on a resume) are validated and may run; the rest are rejected, together one
    rejection against ``max_tool_rejections``.
    """
    checked, uncounted = _checked(state, calls, calls if turn is None else turn)
    if decisions is None and (held := _needing_approval(state, checked, confidence)):
        return await hold_tool_calls(state, tuple(calls), held, confidence)
    decided = decisions or {}
    replies: list[ToolResultMessage | None] = [None] * len(checked)
    runs: list[tuple[int, ValidCall]] = []
    denied: dict[int, ReviewItem] = {}
    for index, item in enumerate(checked):
        if isinstance(item, Rejected):
            replies[index] = await _reject(state, item, counted=item.call.id not in uncounted)
        elif (review := decided.get(item.call.id)) is not None and review.status == "denied":
            denied[index] = review
        else:
            runs.append((index, item))
    results = await _run_paid(state, [valid for _, valid in runs])
    if isinstance(results, Finish):
        return results
    outcomes = {index: result for (index, _), result in zip(runs, results, strict=True)}
    for index, item in enumerate(checked):  # the report's lines in call order, as a replay rebuilds them
        if index in denied:
            replies[index] = _denied(state, item.call, denied[index])
        elif index in outcomes and outcomes[index].escalate is None:
            replies[index] = _remember(state, outcomes[index])
    if unrecovered := [(valid, reason) for i, valid in runs if (reason := outcomes[i].escalate) is not None]:
        return await hold_failed_calls(state, unrecovered)
    state.messages.extend(r for r in replies if r is not None)
    if rejected := [item for item in checked if isinstance(item, Rejected)]:
        await escalate_tier(state, f"invalid tool call: {rejected[0].reason}", "invalid_tool_call")
    else:
        step_went_right(state)
    failed = any(r is not None and r.is_error for r in replies)
    state.phase = Phase.RECOVERY if failed else Phase.EXECUTION
    limit = state.spec.budget.max_tool_rejections
    if state.rejections >= limit:
        last = next(item.reason for item in reversed(checked) if isinstance(item, Rejected))
        return Finish(
            RunStatus.PARTIAL,
            f"too many rejected tool calls ({state.rejections}, max_tool_rejections={limit}); last: {last}",
            salvage=True,
        )
    return await check_step(state, [(item.call, r) for item, r in zip(checked, replies, strict=True) if r is not None])
