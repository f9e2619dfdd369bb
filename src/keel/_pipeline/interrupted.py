"""Resume after a crash: a run whose process died goes on from its journal, and no side effect runs twice.

The run is claimed only if its process is gone (or the operator says so: ``force``), atomically: the resumed
`run_started` must directly follow the journal as read, so a process still writing, or another resume, wins
instead. Then the journal's tail says where the run was:

- a model call in flight (a `budget_reserved` with no `model_called` after it): charged at its reserved worst
  case, since the provider may have billed it;
- tool calls of the last turn without a result: each started side effect (a `checkpoint` with stage
  ``tool_started``) is journaled as `interrupted`; calls that are safe to issue again — read-only, idempotent, or
  taking the idempotency key — run again (with the same key); a side effect that may have happened and cannot
  be deduplicated goes to a person (``side effect may have happened``), never silently again;
- a final answer that was being judged: judged again; a pause being written: closed as ESCALATED.
"""

from __future__ import annotations

from keel._pipeline.act import act
from keel._pipeline.conclude import conclude
from keel._pipeline.escalate import hold_failed_calls
from keel._pipeline.execute import ToolOutcome, call_signature, idempotency_key
from keel._pipeline.record import committed, next_event, record
from keel._pipeline.recover import journal_attempt
from keel._pipeline.replay import replay
from keel._pipeline.run import drive_to_end
from keel._pipeline.spend import Hold
from keel._pipeline.state import CallOrdinals, Finish, RunSpec, RunState
from keel._pipeline.validate import ValidCall, validate_call
from keel.cost.ledger import SpendLedger, entry_id_for
from keel.errors import ResumeError
from keel.journal import Event, EventKind, Phase
from keel.models.base import ModelResponse, ToolCall
from keel.recovery.owner import ProcessOwner
from keel.result import RunResult, RunStatus
from keel.store.base import RunRecord

__all__ = ["resume_interrupted"]


def _check_owner(run_id: str, events: list[Event], force: bool) -> None:
    started = [e for e in events if e.kind is EventKind.RUN_STARTED]
    owner = ProcessOwner.from_payload(started[-1].payload.get("owner")) if started else None
    alive = owner.is_alive() if owner is not None else None
    if alive:
        raise ResumeError(f"run {run_id} is still running ({owner}): let it finish, or stop that process first")
    if alive is None and not force:
        where = f"on another host ({owner})" if owner is not None else "by a process Keel did not record"
        raise ResumeError(
            f"run {run_id} is marked running {where}; Keel cannot tell whether that process died. If you know it "
            f"did, resume with force: keel resume {run_id} --force (or agent.resume(run_id, force=True))"
        )


async def resume_interrupted(spec: RunSpec, row: RunRecord, events: list[Event], *, force: bool) -> RunResult:
    """Continue the run `spec.run_id`, left running by a process that died, to its end (or its next pause)."""
    _check_owner(spec.run_id, events, force)
    state = replay(spec, row, events)
    first = next_event(
        state,
        EventKind.RUN_STARTED,
        {
            "resumed": True,
            "from": RunStatus.RUNNING.value,
            "interrupted_after": events[-1].seq if events else 0,
            "owner": ProcessOwner.current().as_payload(),
        },
    )
    state.row = await spec.store.resume_run(spec.run_id, first, paused=RunStatus.RUNNING)
    committed(state, first)
    return await drive_to_end(state, lambda: _pick_up(state, events))


async def _pick_up(state: RunState, events: list[Event]) -> Finish | None:
    """Take the step the run was in when its process died; None to go on with the next model turn."""
    await _charge_lost_call(state, events)
    if events and events[-1].kind is EventKind.ESCALATED:  # died while closing a pause: close it
        return Finish(RunStatus.ESCALATED, f"waiting for a person: {events[-1].payload.get('reason')}", output=None)
    last = next((e for e in reversed(events) if e.kind is EventKind.MODEL_CALLED and "error" not in e.payload), None)
    if last is None:
        return None
    after = [e for e in events if e.seq > last.seq]
    if last.phase is Phase.SUMMARIZATION:
        reason = "stopped by a bound and answered from what it gathered; its process died before it was closed"
        return Finish(RunStatus.PARTIAL, reason)
    if (stop := _stopping(after)) is not None:
        return stop
    calls = [ToolCall(c["id"], c["name"], c["arguments"]) for c in last.payload.get("tool_calls") or ()]
    if calls:
        return await _finish_turn(state, calls, after, last.payload.get("confidence"))
    if any(e.kind is EventKind.GUARD_VERDICT and "feedback" in e.payload for e in after):
        return None  # the answer was judged and sent back: the correction is in the conversation
    response = ModelResponse(
        text=last.payload.get("text"),
        finish_reason=last.payload.get("finish_reason") or "stop",
        confidence=last.payload.get("confidence"),
    )
    return await conclude(state, response)


def _stopping(after: list[Event]) -> Finish | None:
    """A bounded stop the run had decided (journaled before its best-effort answer): it still stands."""
    for event in reversed(after):
        if event.kind is EventKind.CHECKPOINT and event.payload.get("stage") == "stopping":
            return Finish(RunStatus.PARTIAL, str(event.payload.get("reason")), salvage=True)
    return None


async def _charge_lost_call(state: RunState, events: list[Event]) -> None:
    """Settle what the dead process held in the spend ledger at its worst case: it may have been spent.

    A model call in flight (a `budget_reserved` with tokens and no `model_called` after it) is also charged to
    the run and journaled; a turn's paid tools hold only money, and their invocations are journaled already. A call
    journaled but maybe not settled (the ledger is written after the journal) is settled at its journaled cost. A hold
    the ledger has but the journal never recorded (the process died in between) is released: no call was made.
    """
    if events:  # died between the ledger's commit and the journal's: nothing was called under that hold
        await SpendLedger(state.spec.store).release_entry(entry_id_for(state.spec.run_id, events[-1].seq + 1))
    reserved = next((e for e in reversed(events) if e.kind is EventKind.BUDGET_RESERVED), None)
    if reserved is None:
        return
    held = Hold.journaled(state.spec.store, state.spec.run_id, reserved)
    usd, tokens = held.reservation.usd, held.reservation.tokens
    answered = next((e for e in events if e.seq > reserved.seq and e.kind is EventKind.MODEL_CALLED), None)
    if answered is not None:
        if tokens:  # the call was journaled, maybe not yet settled: settle it at what it cost (again is harmless)
            await held.settle(answered.cost_usd, answered.tokens_in + answered.tokens_out)
        return
    if tokens:
        state.usage.add_request(reserved.phase, tokens, 0, usd)
        payload = {
            "model": state.current_model.name,
            "step": state.steps,
            "error": "interrupted: the process died during this call; charged at its reserved worst case",
            "reserved_tokens": tokens,
            "attempt": 0,
            "interrupted": True,
        }
        await record(state, EventKind.MODEL_CALLED, payload, tokens_in=tokens, cost_usd=usd, phase=reserved.phase)
    await held.settle(usd, tokens)


def _call_states(after: list[Event]) -> tuple[set[str], set[str]]:
    """The last turn's calls that have their answer in the journal, and those started without one.

    A call is answered by its latest attempt (`tool_called`), a rejection, a denial or a degradation — unless an
    attempt was started after it (a retry, an alternative) and never reported back: that one is in doubt. A call
    whose chain died between attempts keeps its last attempt as its answer: the model reads that error and may
    ask again; repeating an attempt here could repeat a side effect.
    """
    answered: set[str] = set()
    started: set[str] = set()
    for event in after:
        call_id = event.payload.get("call_id")
        if not isinstance(call_id, str):
            continue
        if event.kind is EventKind.CHECKPOINT and event.payload.get("stage") == "tool_started":
            started.add(call_id)
            answered.discard(call_id)
        elif event.kind is EventKind.TOOL_CALLED and event.payload.get("outcome") != "interrupted":
            answered.add(call_id)
            started.discard(call_id)
        elif event.kind is EventKind.TOOL_REJECTED or (
            event.kind is EventKind.REVIEW_DECIDED and event.payload.get("decision") == "denied"
        ):
            answered.add(call_id)
        elif event.kind is EventKind.FALLBACK_USED and event.payload.get("degraded"):
            answered.add(call_id)
            started.discard(call_id)
    return answered, started


def _safe_to_repeat(valid: ValidCall) -> bool:
    """Issuing it again cannot double its effect: read-only, idempotent, or it deduplicates on the key it is given."""
    tool = valid.tool
    return not tool.side_effects or tool.idempotent or tool.context_param is not None


async def _finish_turn(
    state: RunState, calls: list[ToolCall], after: list[Event], confidence: float | None
) -> Finish | None:
    """Answer the last turn's calls that have no answer yet; a side effect that may have happened waits for a person."""
    if any(e.kind is EventKind.CHECKPOINT and "state_hash" in e.payload for e in after):
        return None  # the step was complete
    if not any(e.kind in _TURN_BEGUN for e in after):
        # Nothing of the turn ran: it may not have been authorized yet (the process died while holding it for a
        # person), so it goes through the whole pipeline again, approvals included.
        return await act(state, calls, confidence=confidence)
    answered, started = _call_states(after)
    missing = [call for call in calls if call.id not in answered]
    if not missing:
        return None
    unsafe: list[tuple[ValidCall, str]] = []
    for call in missing:
        valid = validate_call(state.spec.registry, call)
        if call.id not in started or not isinstance(valid, ValidCall):
            continue
        await _mark_interrupted(state, valid)
        if not _safe_to_repeat(valid):
            reason = (
                f"side effect may have happened: {call.name} was started before the process died and did not report "
                "back; approve to run it again, deny to treat it as not done"
            )
            unsafe.append((valid, reason))
    if unsafe:
        held = {valid.call.id for valid, _ in unsafe}
        others = [call for call in missing if call.id not in held]
        return await hold_failed_calls(state, unsafe, trigger="interrupted", also=others)
    # Part of the turn ran: it was authorized whole, not asked again; its bound counts from the whole turn.
    return await act(state, missing, decisions={}, turn=calls)


_TURN_BEGUN = (EventKind.TOOL_CALLED, EventKind.TOOL_REJECTED, EventKind.CHECKPOINT, EventKind.REVIEW_DECIDED)
"""Events that mean a turn got past its authorization (a held turn is journaled `escalated` before any of these)."""


async def _mark_interrupted(state: RunState, valid: ValidCall) -> None:
    """Journal a started call that never reported back as `interrupted`, with the key it ran under."""
    signature = call_signature(valid)
    ordinals = state.call_ordinals.setdefault(signature, CallOrdinals())
    ordinal = ordinals.take()
    ordinals.release(ordinal)  # not completed: a re-issue takes the same ordinal, hence the same key
    key = idempotency_key(state.spec.run_id, signature, ordinal)
    error = "the process died during this call; whether it had its effect is unknown"
    await journal_attempt(state, ToolOutcome(valid, "interrupted", error, 0.0, key, ordinal), 0)
