"""Recover: a tool call that keeps failing is retried, replaced, degraded or escalated — never retried forever (E1).

The chain, for a failure worth retrying (by default a timeout or an `OSError`, such as a refused connection):
retries with backoff under the tool's `RetryPolicy` → the tool's declared alternatives in order, with the same
arguments → graceful degradation: the tool is marked unavailable for the rest of the run and the model is told
to go on without it → or, for a ``required=True`` tool, a person decides (the run escalates). A tool Keel may
not repeat (a side effect that is not idempotent, a paid call, without ``retry=``) and that has no alternative
is not degraded after its one attempt: the model reads the error, and a repeat it asks for carries the same
idempotency key. Every attempt is
journaled as `tool_called` (with its attempt number), every wait as `retry_scheduled`, every replacement and
degradation as `fallback_used`.

A failure that is not worth retrying (the tool raised `ValueError` on a bad id) goes straight back to the
model, which can correct its call: retrying would fail the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ValidationError

from keel._pipeline.execute import ToolOutcome, execute_call
from keel._pipeline.record import record
from keel._pipeline.state import RunState
from keel._pipeline.validate import ValidCall
from keel.journal import EventKind
from keel.recovery.retry import NO_RETRY, RetryPolicy, attempts
from keel.tools.tool import Tool

__all__ = ["degrade_message", "journal_attempt", "policy_for", "run_call"]


def policy_for(tool: Tool, agent_policy: RetryPolicy) -> RetryPolicy:
    """The tool's own policy; else one attempt for a non-idempotent side effect or a paid call; else the agent's.

    A failed side effect may still have happened, and a failed paid call may still be billed: repeating either
    is a decision the tool's author makes (``retry=``), not a default.
    """
    if tool.retry is not None:
        return tool.retry
    if (tool.side_effects and not tool.idempotent) or tool.cost_usd > 0:
        return NO_RETRY
    return agent_policy


def _transient(outcome: ToolOutcome, policy: RetryPolicy) -> bool:
    """Whether the failure is one the policy retries (and, once retries are spent, one to fall back from)."""
    match outcome.outcome:
        case "ok" | "unavailable" | "interrupted":
            return False
        case "timeout":
            return policy.retries(TimeoutError())
        case "abandoned":  # a sync call still running in its thread: another one would only pile up threads
            return False
        case "error":
            return outcome.error is not None and policy.retries(outcome.error)


def degrade_message(tool: str, reason: str) -> str:
    """What the model reads once a tool is given up on; the same text live and when replayed."""
    return (
        f"Tool {tool!r} is unavailable for the rest of this run ({reason}). Do not call it again: continue "
        "without it, and tell the user what could not be done."
    )


async def journal_attempt(state: RunState, result: ToolOutcome, attempt: int) -> None:
    """Journal one attempt of a tool call as `tool_called`, count it, and apply the taint rule (G5)."""
    tool = result.valid.tool
    event = await record(
        state,
        EventKind.TOOL_CALLED,
        {
            "call_id": result.valid.call.id,
            "tool": tool.name,
            "arguments": result.valid.args.model_dump(mode="json"),
            "outcome": result.outcome,
            "result": result.content if result.ok else None,
            "error": None if result.ok else result.content,
            "attempt": attempt,
            "severity": tool.severity,
            "side_effects": tool.side_effects,
            "idempotency_key": result.idempotency_key,
            "ordinal": result.ordinal,
        },
        cost_usd=result.spent_usd,
        latency_ms=result.latency_ms,
    )
    state.informed_by.append(event.seq)
    state.usage.tool_calls += 1
    if not tool.trusted and result.outcome in ("ok", "error") and state.tainted_by is None:
        state.tainted_by = f"output of {tool.name}"  # taint rule (G5): an error message can carry its data too


async def _with_retries(state: RunState, valid: ValidCall) -> tuple[ToolOutcome, float, bool, bool]:
    """Run `valid` under its tool's policy.

    Returns the last outcome, the money spent, whether it failed transiently, and whether Keel retried it.
    """
    policy = policy_for(valid.tool, state.spec.retry)
    spent = 0.0

    async def once(attempt: int) -> ToolOutcome:
        nonlocal spent
        if valid.tool.side_effects:  # so a crash mid-call is known at resume: the effect may have happened
            marker = {"stage": "tool_started", "call_id": valid.call.id, "tool": valid.tool.name, "attempt": attempt}
            await record(state, EventKind.CHECKPOINT, marker)
        result = await execute_call(state, valid, attempt=attempt)
        spent += result.spent_usd
        await journal_attempt(state, result, attempt)
        return result

    async def before_wait(result: ToolOutcome, attempt: int, delay_s: float) -> None:
        payload = {"call_id": valid.call.id, "tool": valid.tool.name, "attempt": attempt, "delay_s": round(delay_s, 3)}
        await record(state, EventKind.RETRY_SCHEDULED, {**payload, "error": result.content})

    last = await attempts(
        policy,
        once,
        should_retry=lambda result: _transient(result, policy),
        before_wait=before_wait,
        time_left=state.time_for_work,
    )
    return last, spent, _transient(last, policy), policy.max_attempts > 1


async def run_call(state: RunState, valid: ValidCall) -> ToolOutcome:
    """Run a validated call through the failure chain; the outcome the model will be told about.

    The returned outcome's `spent_usd` is what every attempt and alternative cost in all; `escalate` is set when
    a required tool could not be recovered and a person must decide.
    """
    tool = valid.tool
    if (gone := state.unavailable.get(tool.name)) is not None:
        result = ToolOutcome(valid, "unavailable", degrade_message(tool.name, gone), 0.0, "", 0)
        await journal_attempt(state, result, 0)
        return result
    result, spent, transient, gave_up = await _with_retries(state, valid)
    failed = [tool.name]
    for name in tool.alternatives if transient else ():
        alternative = _alternative(state, valid, name)
        if isinstance(alternative, str):
            await _fallback(state, valid, to=name, reason=alternative, skipped=True)
            continue
        await _fallback(state, valid, to=name, reason=result.content)
        result, cost, transient, _ = await _with_retries(state, alternative)
        spent += cost
        gave_up = True
        failed.append(name)
        if not transient:
            break
    result = dataclasses.replace(result, spent_usd=spent)
    if not transient:
        return result
    if tool.required:
        return dataclasses.replace(result, escalate=f"required tool {tool.name!r} failed: {result.content}")
    if not gave_up:  # one attempt, nothing else to try (a side effect Keel may not repeat): the model decides
        return result
    reason = f"it failed: {result.content}"
    for name in failed:  # every tool of the chain that failed is given up on, and no longer offered
        state.unavailable.setdefault(name, reason)
    feedback = degrade_message(tool.name, reason)
    await _fallback(state, valid, to=None, reason=result.content, feedback=feedback, unavailable=failed)
    return dataclasses.replace(result, shown=feedback)


def _alternative(state: RunState, valid: ValidCall, name: str) -> ValidCall | str:
    """The call redirected to the alternative `name`, or why it cannot take the same arguments."""
    tool = state.spec.registry.get(name)
    if tool is None:
        return f"{name!r} is not among the agent's tools"
    if name in state.unavailable:
        return f"{name!r} is unavailable in this run"
    try:
        args = tool.args_model.model_validate(valid.args.model_dump())
    except ValidationError as exc:
        return f"{name!r} does not accept these arguments ({exc.error_count()} schema errors)"
    return ValidCall(valid.call, tool, args)


async def _fallback(state: RunState, valid: ValidCall, *, to: str | None, reason: str, **extra: Any) -> None:
    payload: dict[str, Any] = {"call_id": valid.call.id, "from": valid.tool.name, "to": to, "reason": reason}
    if to is None:
        payload["degraded"] = True
    await record(state, EventKind.FALLBACK_USED, {**payload, **extra})
