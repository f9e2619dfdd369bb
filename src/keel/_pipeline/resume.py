"""Resume: continue an escalated run once a person has decided (G4), from its journal alone.

The run is claimed first (ESCALATED → running, atomically across processes, so two resumes cannot both run
the approved action), its state is replayed from the journal, each decision is journaled as
`review_decided`, and the step that was held is taken with the decisions: an approved tool call runs once, a
denied one is reported to the model; an approved answer goes on through the remaining guards, a denied one is
sent back; approved spending lets the run go on, denied spending ends it PARTIAL. Nothing that already ran is
run again.
"""

from __future__ import annotations

from typing import Any

from keel._pipeline.act import act
from keel._pipeline.conclude import deliver
from keel._pipeline.escalate import denial_feedback, loop_feedback
from keel._pipeline.interrupted import resume_interrupted
from keel._pipeline.record import committed, next_event, record
from keel._pipeline.replay import replay
from keel._pipeline.run import drive_to_end
from keel._pipeline.state import Finish, RunSpec, RunState
from keel.errors import ResumeError, ReviewError
from keel.journal import Event, EventKind, Phase
from keel.models.base import ToolCall, UserMessage
from keel.recovery.owner import ProcessOwner
from keel.result import RunResult, RunStatus
from keel.store.base import ReviewItem, RunRecord

__all__ = ["resume_pipeline"]


async def resume_pipeline(spec: RunSpec, *, force: bool = False) -> RunResult:
    """Continue the run `spec.run_id` — escalated, or left running by a process that died — to its end."""
    store = spec.store
    row = await store.get_run(spec.run_id)
    _check_resumable(spec, row)
    events = await store.events(spec.run_id)
    if row.status is RunStatus.RUNNING:
        return await resume_interrupted(spec, row, events, force=force)
    paused = next((e for e in reversed(events) if e.kind is EventKind.ESCALATED), None)
    if paused is None:
        raise ResumeError(f"run {spec.run_id} is escalated but its journal has no `escalated` event to resume from")
    reviews = await _decided_reviews(spec, paused)
    pending = _held_step(spec, paused, reviews)  # checked before the claim: a run we cannot continue stays paused
    state = replay(spec, row, events)
    first = next_event(
        state,
        EventKind.RUN_STARTED,
        {
            "resumed": True,
            "from": RunStatus.ESCALATED.value,
            "review_ids": [r.id for r in reviews],
            # Recorded with the claim, before anything runs: should this process die, the run is recognised as
            # interrupted (its owner is gone) like a first run's, not "marked running by an unknown process".
            "owner": ProcessOwner.current().as_payload(),
        },
    )
    state.row = await store.resume_run(spec.run_id, first, paused=RunStatus.ESCALATED)
    committed(state, first)
    return await drive_to_end(state, lambda: _take_held_step(state, pending, reviews, after=paused.seq))


def _check_resumable(spec: RunSpec, row: RunRecord) -> None:
    if row.agent != spec.agent:
        raise ResumeError(
            f"run {row.run_id} belongs to agent {row.agent!r}; resume it with that agent, not {spec.agent!r}"
        )
    if row.status in (RunStatus.ESCALATED, RunStatus.RUNNING):
        return
    raise ResumeError(f"run {row.run_id} has finished ({row.status.value}: {row.reason}); there is nothing to resume")


async def _decided_reviews(spec: RunSpec, paused: Event) -> list[ReviewItem]:
    """The paused run's review items, every one decided; `ResumeError` naming those still pending."""
    reviews = []
    for review_id in paused.payload.get("review_ids", ()):
        try:
            reviews.append(await spec.store.get_review(review_id))
        except ReviewError as exc:
            raise ResumeError(f"run {spec.run_id} cannot be resumed: {exc}") from exc
    waiting = [r for r in reviews if r.status == "pending"]
    if waiting:
        listed = "; ".join(f"{r.id} ({r.action}: {r.reason})" for r in waiting)
        first = waiting[0].id
        raise ResumeError(
            f"run {spec.run_id} is still waiting for a person: {listed}. Decide first: keel review approve {first} "
            f"--by NAME (or deny), then resume"
        )
    return reviews


def _held_step(spec: RunSpec, paused: Event, reviews: list[ReviewItem]) -> dict[str, Any]:
    """The step the run paused on, checked to be one this Keel can take with these decisions."""
    pending = paused.payload.get("pending")
    kind = pending.get("kind") if isinstance(pending, dict) else None
    ids = {r.id for r in reviews}
    if kind == "tool_calls" and isinstance(pending, dict):
        wanted = set(pending.get("reviews", {}).values())
        if isinstance(pending.get("calls"), list) and wanted <= ids:
            return pending
    elif kind in ("answer", "spend", "loop") and isinstance(pending, dict) and len(reviews) == 1:
        return pending
    raise ResumeError(
        f"run {spec.run_id} paused on a step this Keel cannot resume ({kind or 'unknown'}); it stays escalated"
    )


async def _journal_decision(state: RunState, item: ReviewItem, **extra: Any) -> None:
    event = await record(
        state,
        EventKind.REVIEW_DECIDED,
        {
            "review_id": item.id,
            "decision": item.status,
            "by": item.decided_by,
            "note": item.note,
            "action": item.action,
            "decided_at": item.decided_at,
            **extra,
        },
    )
    state.informed_by.append(event.seq)  # the next model call is informed by the decision (decision trace)


async def _take_held_step(
    state: RunState, pending: dict[str, Any], reviews: list[ReviewItem], *, after: int
) -> Finish | None:
    kind = pending["kind"]
    if kind == "tool_calls":
        return await _resume_tool_calls(state, pending, {r.id: r for r in reviews}, after=after)
    if kind == "answer":
        return await _resume_answer(state, pending, reviews[0])
    if kind == "loop":
        return await _resume_loop(state, reviews[0])
    return await _resume_spend(state, reviews[0])


async def _resume_tool_calls(
    state: RunState, pending: dict[str, Any], by_id: dict[str, ReviewItem], *, after: int
) -> Finish | None:
    decisions: dict[str, ReviewItem] = {}
    for call_id, review_id in pending.get("reviews", {}).items():
        item = by_id[review_id]
        decisions[call_id] = item
        denied = {"feedback": denial_feedback(item)} if item.status == "denied" else {}
        await _journal_decision(state, item, call_id=call_id, **denied)
    answered = {  # a held turn never runs in part before the pause; this guards a resume that died midway
        e.payload.get("call_id")
        for e in state.events
        if e.seq > after and e.kind in (EventKind.TOOL_CALLED, EventKind.TOOL_REJECTED)
    }
    turn = [ToolCall(c["id"], c["name"], c["arguments"]) for c in pending["calls"]]
    calls = [call for call in turn if call.id not in answered]
    if not calls:
        return None
    return await act(state, calls, decisions=decisions, turn=turn)


async def _resume_answer(state: RunState, pending: dict[str, Any], item: ReviewItem) -> Finish | None:
    if item.status == "approved":
        await _journal_decision(state, item)
        return await deliver(
            state, pending["answer"], confidence=None, first_guard=int(pending.get("guards_done", 0)), approved=True
        )
    feedback = denial_feedback(item)
    await _journal_decision(state, item, feedback=feedback)
    state.messages.append(UserMessage(feedback))
    state.phase = Phase.VALIDATION
    return None


async def _resume_loop(state: RunState, item: ReviewItem) -> Finish | None:
    if item.status == "denied":
        await _journal_decision(state, item)
        note = f": {item.note}" if item.note else ""
        return Finish(RunStatus.PARTIAL, f"loop detected; {item.decided_by} stopped the run{note}", salvage=True)
    feedback = loop_feedback(item)
    await _journal_decision(state, item, loop=True, feedback=feedback)
    state.spec.loop_detector.forget(state.loop)
    state.messages.append(UserMessage(feedback))
    return None


async def _resume_spend(state: RunState, item: ReviewItem) -> Finish | None:
    if item.status == "denied":
        await _journal_decision(state, item)
        note = f": {item.note}" if item.note else ""
        return Finish(
            RunStatus.PARTIAL,
            f"{item.decided_by} declined further spending past ${item.arguments.get('threshold_usd')}{note}",
        )
    limit = state.spec.escalation.max_cost_usd or 0.0
    asked = float(item.arguments.get("spent_usd", 0.0)) + float(item.arguments.get("next_call_usd", 0.0))
    state.spend_review_at_usd = asked + limit  # the approved call, then another max_cost_usd
    await _journal_decision(state, item, review_at_usd=state.spend_review_at_usd)
    return None
