"""The run journal: one append-only list of events per run.

The journal is at once the decision trace, the tool-call log, the token ledger, the audit trail and the
checkpoint a run resumes from. Every part of Keel records what happened as an `Event` with one of the kinds
below; there are no parallel logs.

Event kinds (`EventKind`): when each is written, and its payload keys.

- `run_started`: a run begins. agent, task, session_id, model, instructions, tools, budget, output_schema, user,
  defined_in (the agent's module and file, for ``keel resume``), owner (host, pid, started, boot_id: the process
  running it, so a run whose process died can be told from a live one), limits (the spending limits that apply:
  key, scope and each ceiling set, for dashboards), tiers (a `ModelTiers` run: tier name → model and list
  price). A resumed run starts again with resumed, from (escalated | running), review_ids or interrupted_after,
  owner.
- `model_called`: a model call returned or failed. model, step, text, tool_calls, finish_reason, provider_id,
  reason (the model's stated reason), confidence, alternatives (what it could have chosen), informed_by (seqs of
  the events whose data it saw), reserved_tokens (the worst case authorized before the call), attempt (1 for the
  first try), error, retryable, retry_after_s, interrupted (a call lost in a crash, charged at its worst case); and when
  the provider's usage could not be taken as is, usage_estimated (none reported: the reservation is charged),
  usage_distrusted (what was reported when it cannot be true — negative, fractional, absurd — the reservation
  charged instead) or overrun (more reported than reserved); provider_notes (what the provider did on the
  model's behalf, such as a local model's repeated call refused); tier and tier_reason (a `ModelTiers` run: which
  tier, and why); cached and cache_key (answered from the cache: no tokens, no cost).
- `tool_called`: one attempt of a tool call. call_id, tool (an alternative's name when one replaced the tool),
  arguments, outcome (ok | error | timeout | abandoned: a sync tool past its timeout that may still complete |
  unavailable: not run, the tool was given up on earlier | interrupted: started, then the process died), result,
  error, attempt (0 when not run), severity, side_effects, idempotency_key, ordinal.
- `tool_rejected`: a proposed call was refused before running. call_id, tool, arguments, reason, rejections.
- `guard_verdict`: a guard judged an input or an output. guard, verdict (pass | fail | flag | redact | block |
  escalate), target (input | tool_output | output), detail, findings (kinds and masked previews); feedback (the
  correction the model was sent, when it was).
- `budget_reserved`: worst-case spend reserved in the spend ledger before a call, under spending limits.
  entry_id, keys (the ledger keys charged), usd, tokens, ttl_s (when an unsettled reservation stops counting).
- `budget_refused`: a call was refused because a limit would be crossed. limit, needed; remaining (a run's
  `Budget`) or key, window, ceiling, spent, reserved (a `SpendLimit`).
- `escalated`: the run paused for a person. reason, trigger (severity | taint | confidence | cost | guard),
  review_ids, pending (the held step: tool calls, an answer, or spending), elapsed_s.
- `review_decided`: a resumed run applies a decision. review_id, decision, by, note, action, decided_at; call_id
  (a held tool call); feedback (what the model is told of a denial); review_at_usd (approved spending).
- `retry_scheduled`: a failed call will be tried again. attempt (the next one), delay_s, error; call_id and tool
  (a tool call) or model (a model call).
- `fallback_used`: an alternative tool or model replaced a failed one. from, to, reason; call_id (a tool call),
  model: true (a fallback model, for the rest of the run), skipped (an alternative that could not take the
  arguments), degraded (to: null — the tool is given up on for the run) with feedback (what the model is told);
  tier and trigger (invalid_tool_call | invalid_answer | low_confidence: a cheaper tier fell short, the next
  call goes to this tier); cache: true (the cache backend failed: the run goes on without it).
- `loop_detected`: the run returned to a state it had visited, or stopped learning. state_hash, step, kind
  (repeat | no_progress), period, action (nudge, with the feedback the model read | break | escalate), detail.
- `cache_hit`: a cached result replaced a call. key, kind (model | tool), saved_tokens, saved_cost_usd; model (a
  response: the turn's `model_called` follows, with cached) or tool, call_id, arguments and result (a tool result:
  it stands for the call's `tool_called`; the tool-call log lists it as cached).
- `checkpoint`: a resumable point was reached. After each step: step, state_hash, results (digests; the loop
  detector's input). Before a side-effecting tool runs: stage "tool_started", call_id, tool, attempt. Before a
  stopped run's best-effort answer: stage "stopping", reason (a resumed run keeps to the decided stop).
- `plan_version`: a plan was made or revised. version, steps.
- `run_finished`: a run ended (or paused). status, reason, output, report; its `latency_ms` is the run's working
  time so far (time waiting for a person, or dead, excluded).

Phases (`Phase`) attribute tokens and cost: routing, planning, execution, replanning, recovery, validation,
summarization.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventKind", "Phase"]


class EventKind(StrEnum):
    """The journal's vocabulary: every event is one of these."""

    RUN_STARTED = "run_started"
    MODEL_CALLED = "model_called"
    TOOL_CALLED = "tool_called"
    TOOL_REJECTED = "tool_rejected"
    GUARD_VERDICT = "guard_verdict"
    BUDGET_RESERVED = "budget_reserved"
    BUDGET_REFUSED = "budget_refused"
    ESCALATED = "escalated"
    REVIEW_DECIDED = "review_decided"
    RETRY_SCHEDULED = "retry_scheduled"
    FALLBACK_USED = "fallback_used"
    LOOP_DETECTED = "loop_detected"
    CACHE_HIT = "cache_hit"
    CHECKPOINT = "checkpoint"
    PLAN_VERSION = "plan_version"
    RUN_FINISHED = "run_finished"


class Phase(StrEnum):
    """What part of the work an event's tokens and cost are spent on (O3)."""

    ROUTING = "routing"
    PLANNING = "planning"
    EXECUTION = "execution"
    REPLANNING = "replanning"
    RECOVERY = "recovery"
    VALIDATION = "validation"
    SUMMARIZATION = "summarization"


@dataclass(frozen=True, slots=True)
class Event:
    """One immutable entry of a run's journal."""

    run_id: str
    """The run this event belongs to."""
    seq: int
    """Position in the run's journal, starting at 1, without gaps."""
    kind: EventKind
    """What happened."""
    phase: Phase = Phase.EXECUTION
    """The phase the event's tokens and cost are attributed to."""
    payload: dict[str, Any] = field(default_factory=dict)
    """Kind-specific details (JSON-serializable); see the table in this module's docstring."""
    tokens_in: int = 0
    """Input tokens spent by this event (model calls)."""
    tokens_out: int = 0
    """Output tokens spent by this event (model calls)."""
    cost_usd: float = 0.0
    """Money spent by this event."""
    latency_ms: float = 0.0
    """Wall time of the call this event records."""
    ts: float = field(default_factory=time.time)
    """Unix time the event was recorded."""
