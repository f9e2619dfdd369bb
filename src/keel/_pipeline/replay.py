"""Replay: rebuild a run's state from its journal, so a paused run continues as if it had never stopped.

Nothing is executed: model turns, tool results, rejections, quarantines, corrections and review decisions are
read back from their events and turned into the same conversation, usage, counters, taint and idempotency
ordinals the live run had. This is why every message the pipeline sends the model is derivable from an event
(a correction is journaled as its verdict's ``feedback``, a denial as its decision's).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from keel._pipeline.act import call_summary
from keel._pipeline.execute import call_signature, fit_result
from keel._pipeline.recover import degrade_message
from keel._pipeline.state import CallOrdinals, RunSpec, RunState
from keel._pipeline.tiers import replay_escalation, replay_kept, step_went_right
from keel._pipeline.validate import ValidCall, validate_call
from keel.guardrails.base import Finding
from keel.guardrails.injection import quarantine
from keel.journal import Event, EventKind, Phase
from keel.models.base import AssistantMessage, ToolCall, ToolResultMessage, UserMessage
from keel.store.base import RunRecord

__all__ = ["replay"]


@dataclass(slots=True)
class _Turn:
    """The tool calls of the latest model turn and what came of them, applied in call order like `act` does."""

    calls: dict[str, ToolCall] = field(default_factory=dict)
    results: dict[str, ToolResultMessage] = field(default_factory=dict)
    lines: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Per call: its status-report line and, for a success, its result (None: the line is "not done")."""
    trusted: set[str] = field(default_factory=set)
    """Calls whose result came from a tool declared ``trusted`` (`RunState.trusted_results`)."""
    rejected: bool = False
    """A call of this turn was rejected: the step did not go right (a tier escalation holds)."""
    tier: str | None = None
    """The tier of the latest model turn (tiered runs): where a correction of it goes at least."""

    def flush(self, state: RunState) -> None:
        order = [*self.calls, *(i for i in {**self.results, **self.lines} if i not in self.calls)]
        for call_id in order:
            if call_id in self.lines:
                line, result = self.lines[call_id]
                if result is None:
                    state.not_done.append(line)
                else:
                    state.done.append(line)
                    state.tool_results.append(result)
                    if call_id in self.trusted:
                        state.trusted_results.append(result)
        if self.results:
            state.messages.extend(_fitted(self.results[i]) for i in order if i in self.results)
            failed = any(result.is_error for result in self.results.values())
            state.phase = Phase.RECOVERY if failed else Phase.EXECUTION
        self.calls, self.results, self.lines, self.trusted = {}, {}, {}, set()


def _fitted(message: ToolResultMessage) -> ToolResultMessage:
    """The result as the model was shown it (`act` cuts an oversized one the same way)."""
    shown = fit_result(message.content)
    return message if shown is message.content else dataclasses.replace(message, content=shown)


def replay(spec: RunSpec, row: RunRecord, events: list[Event]) -> RunState:
    """The state of the run `events` journal, ready for its next step (its wall clock resumed where it paused)."""
    state = RunState(spec=spec, messages=[UserMessage(spec.task)], row=row, events=list(events))
    state.seq = events[-1].seq if events else 0
    turn = _Turn()
    elapsed, segment_start = 0.0, None
    for event in events:
        payload = event.payload
        match event.kind:
            case EventKind.RUN_STARTED:
                segment_start = event.ts
                if event.seq == 1:
                    state.informed_by = [event.seq]
            case EventKind.MODEL_CALLED:
                turn.flush(state)
                _model_called(state, turn, event)
            case EventKind.TOOL_CALLED:
                _tool_called(state, turn, event)
            case EventKind.CACHE_HIT if "call_id" in payload:
                _cached_tool_result(state, turn, event)
            case EventKind.TOOL_REJECTED:
                _tool_rejected(state, turn, event)
            case EventKind.GUARD_VERDICT:
                _guard_verdict(state, turn, payload)
            case EventKind.REVIEW_DECIDED:
                _review_decided(state, turn, event)
            case EventKind.ESCALATED:
                elapsed, segment_start = float(payload.get("elapsed_s", 0.0)), None
                _held_again(turn, payload)
            case EventKind.FALLBACK_USED:
                _fallback_used(state, turn, payload)
            case EventKind.CHECKPOINT if "state_hash" in payload:
                _step_done(state, turn, payload)
            case EventKind.LOOP_DETECTED if payload.get("action") == "nudge":
                state.loop.nudged = True
                state.messages.append(UserMessage(payload["feedback"]))
            case _:
                pass  # budget and lifecycle events change nothing the next step reads
    turn.flush(state)
    if segment_start is not None and events:  # the last segment ran until its process died
        elapsed += max(0.0, events[-1].ts - segment_start)
    state.started = time.monotonic() - elapsed  # time spent waiting for a person, or dead, is not the run's time
    return state


def _tool_rejected(state: RunState, turn: _Turn, event: Event) -> None:
    payload = event.payload
    # The running count as journaled: the calls past a turn's bound share one (`act`).
    state.rejections = int(payload.get("rejections", state.rejections + 1))
    call_id = payload["call_id"]
    turn.results[call_id] = ToolResultMessage(call_id, payload["tool"], payload["reason"], is_error=True)
    turn.rejected = True
    replay_kept(state, turn.tier)
    state.informed_by.append(event.seq)


def _step_done(state: RunState, turn: _Turn, payload: dict[str, Any]) -> None:
    """A step's checkpoint: its results precede a nudge; a step without rejections drops a tier escalation."""
    if not turn.rejected:
        step_went_right(state)
    turn.flush(state)
    state.spec.loop_detector.observe(state.loop, payload["state_hash"], payload.get("results", ()))


def _model_called(state: RunState, turn: _Turn, event: Event) -> None:
    payload = event.payload
    turn.rejected, turn.tier = False, payload.get("tier")
    state.steps = max(state.steps, int(payload.get("step", 0)))
    state.usage.add_event(event)
    state.informed_by = [event.seq]
    if payload.get("error") is not None:
        return  # a failed call sent nothing back
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in payload.get("tool_calls") or ())
    state.call_ids.update(call.id for call in calls)
    text = payload.get("text")
    state.messages.append(AssistantMessage(text, calls))
    turn.calls = {call.id: call for call in calls}
    if text:
        state.last_text = text


def _tool_called(state: RunState, turn: _Turn, event: Event) -> None:
    payload = event.payload
    call_id, name, outcome = payload["call_id"], payload["tool"], payload["outcome"]
    call = turn.calls.get(call_id) or ToolCall(call_id, name, "{}")  # the model's call (`name` may be its alternative)
    state.usage.add_event(event)
    state.informed_by.append(event.seq)
    ok = outcome == "ok"
    content = payload["result"] if ok else payload["error"]
    turn.results[call_id] = ToolResultMessage(call_id, call.name, content, is_error=not ok)
    if ok:
        turn.lines[call_id] = (f"{call_summary(call)} -> ok", content)
        _note_trust(state, turn, call_id, name)
    else:
        turn.lines[call_id] = (f"{call_summary(call)} -> {outcome}: {content}", None)
    ordinal = payload.get("ordinal")
    ran = ToolCall(call_id, name, json.dumps(payload.get("arguments", {})))  # the tool that ran, as it ran
    if outcome == "unavailable":
        pass  # not run: it took no ordinal
    elif isinstance(ordinal, int):
        _replay_ordinal(state, ran, ordinal, ok)
    elif ok:  # a journal from before ordinals were recorded: the next free one, as it was then
        _replay_ordinal(state, ran, _next_ordinal(state, ran), ok)
    tool = state.spec.registry.get(name)
    if (tool is None or not tool.trusted) and outcome in ("ok", "error") and state.tainted_by is None:
        state.tainted_by = f"output of {name}"


def _note_trust(state: RunState, turn: _Turn, call_id: str, name: str) -> None:
    if (tool := state.spec.registry.get(name)) is not None and tool.trusted:
        turn.trusted.add(call_id)


def _cached_tool_result(state: RunState, turn: _Turn, event: Event) -> None:
    """A tool result the cache gave: the call's answer, as if the tool had run (it takes no ordinal)."""
    payload = event.payload
    call_id, name, content = payload["call_id"], payload["tool"], str(payload.get("result", ""))
    call = turn.calls.get(call_id) or ToolCall(call_id, name, "{}")
    state.informed_by.append(event.seq)
    turn.results[call_id] = ToolResultMessage(call_id, call.name, content)
    turn.lines[call_id] = (f"{call_summary(call)} -> ok", content)
    _note_trust(state, turn, call_id, name)
    tool = state.spec.registry.get(name)
    if (tool is None or not tool.trusted) and state.tainted_by is None:
        state.tainted_by = f"output of {name}"


def _replay_ordinal(state: RunState, call: ToolCall, ordinal: int, ok: bool) -> None:
    """Take (a completed call) or free (a failed one) the ordinal the call had, as `execute_call` did.

    So a later identical call gets the idempotency key it would have had.
    """
    valid = validate_call(state.spec.registry, call)
    if not isinstance(valid, ValidCall):
        return  # the tool is gone or changed: a call of it cannot be made again anyway
    ordinals = state.call_ordinals.setdefault(call_signature(valid), CallOrdinals())
    ordinals.next = max(ordinals.next, ordinal + 1)
    if ok:
        ordinals.free = [free for free in ordinals.free if free != ordinal]
    elif ordinal not in ordinals.free:
        ordinals.free.append(ordinal)


def _next_ordinal(state: RunState, call: ToolCall) -> int:
    valid = validate_call(state.spec.registry, call)
    if not isinstance(valid, ValidCall):
        return 0
    ordinals = state.call_ordinals.get(call_signature(valid))
    return ordinals.next if ordinals is not None else 0


def _guard_verdict(state: RunState, turn: _Turn, payload: dict[str, Any]) -> None:
    target = payload.get("target")
    if target == "input" and payload.get("verdict") != "pass" and state.tainted_by is None:
        state.tainted_by = f"the task, flagged by {payload.get('guard')}"
    elif target == "tool_output" and payload.get("quarantined"):
        call_id = payload.get("call_id")
        raw = turn.results.get(call_id) if isinstance(call_id, str) else None
        if raw is not None:
            findings = [Finding(f["kind"], f["start"], f["end"], f["preview"]) for f in payload.get("findings", ())]
            shown = quarantine(raw.content, findings, source=payload.get("tool") or raw.name)
            turn.results[raw.call_id] = ToolResultMessage(raw.call_id, raw.name, shown, is_error=raw.is_error)
    if (feedback := payload.get("feedback")) is not None:
        replay_kept(state, turn.tier)  # a correction goes at least to the corrected turn's tier
        state.messages.append(UserMessage(feedback))
        state.output_retries += 1
        state.phase = Phase.VALIDATION


def _fallback_used(state: RunState, turn: _Turn, payload: dict[str, Any]) -> None:
    """A fallback model serves the rest of the run; a degraded tool is unavailable, the model told so."""
    if "tier" in payload:
        replay_escalation(state, payload)
        return
    if payload.get("cache"):
        state.cache_down = True  # the cache failed in this run: not used again
        return
    if payload.get("model"):
        state.model = next((m for m in state.spec.fallback_models if m.name == payload.get("to")), state.model)
        return
    if not payload.get("degraded"):
        return
    call_id, tool = payload["call_id"], payload["from"]
    for name in payload.get("unavailable") or [tool]:
        state.unavailable.setdefault(name, f"it failed: {payload.get('reason')}")
    feedback = payload.get("feedback") or degrade_message(tool, state.unavailable[tool])
    call = turn.calls.get(call_id) or ToolCall(call_id, tool, "{}")
    turn.results[call_id] = ToolResultMessage(call_id, call.name, feedback, is_error=True)


def _held_again(turn: _Turn, payload: dict[str, Any]) -> None:
    """Calls that failed and went to a person are answered at resume: their failed attempts are not the answer."""
    pending = payload.get("pending")
    if isinstance(pending, dict) and pending.get("retry"):
        for call_id in pending.get("reviews", {}):
            turn.results.pop(call_id, None)
            turn.lines.pop(call_id, None)


def _review_decided(state: RunState, turn: _Turn, event: Event) -> None:
    payload = event.payload
    state.informed_by.append(event.seq)
    if (review_at := payload.get("review_at_usd")) is not None:
        state.spend_review_at_usd = float(review_at)
    feedback = payload.get("feedback")
    if feedback is None:
        return
    if payload.get("loop"):  # a person let a looping run go on
        state.spec.loop_detector.forget(state.loop)
        state.messages.append(UserMessage(feedback))
        return
    call_id = payload.get("call_id")
    if call_id is None:  # a held answer was denied: the model is asked for another
        state.messages.append(UserMessage(feedback))
        state.phase = Phase.VALIDATION
        return
    call = turn.calls.get(call_id) or ToolCall(call_id, payload["action"], "{}")
    turn.results[call_id] = ToolResultMessage(call_id, call.name, feedback, is_error=True)
    turn.lines[call_id] = (f"{call_summary(call)} -> denied by {payload.get('by')}", None)
