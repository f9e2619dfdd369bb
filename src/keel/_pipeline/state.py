"""The state of one run as it moves through the pipeline, and the outcomes that end it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from keel.budget import Budget
from keel.cost.cache import CacheBackend, CachePolicy
from keel.cost.limits import SpendLimit
from keel.cost.tiers import ModelTiers
from keel.guardrails.base import Guard
from keel.guardrails.escalation import Escalation
from keel.journal import Event, Phase
from keel.models.base import Message, Model
from keel.observe.base import Observer, RunInfo
from keel.recovery.loop import LoopDetector, LoopMemory
from keel.recovery.retry import RetryPolicy
from keel.result import RunStatus
from keel.store.base import RunRecord, Store
from keel.tools.registry import ToolRegistry
from keel.usage import Usage

__all__ = ["UNSET", "CallOrdinals", "Finish", "RunSpec", "RunState", "TierTrack"]

UNSET: Any = object()
"""Marks a `Finish` without an explicit output: the best output gathered so far is used."""


@dataclass(slots=True)
class TierTrack:
    """A run's position in its tier map (`keel._pipeline.tiers` moves it)."""

    step: int = 0
    """The lowest level for the rest of the current step: the tier a correction goes to (0: none)."""
    floor: int = 0
    """The lowest level for the rest of the run (after `ModelTiers.sticky_after` escalations)."""
    escalations: int = 0


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What a run was asked to do and under which policy; fixed for the whole run."""

    run_id: str
    agent: str
    task: str
    session_id: str | None
    model: Model
    instructions: str
    registry: ToolRegistry
    budget: Budget
    store: Store
    output_type: type[Any] | None
    output_adapter: TypeAdapter[Any] | None
    output_schema: dict[str, Any] | None
    """The JSON schema of `output_type`, computed once per run."""
    max_output_tokens: int
    max_output_retries: int
    spend_limits: tuple[tuple[SpendLimit, str], ...] = ()
    """The spending limits that apply to this run, each with its ledger key (G2)."""
    input_screens: tuple[Guard, ...] = ()
    """Guards that screen the task and untrusted tool output (prompt injection, G5)."""
    output_guards: tuple[Guard, ...] = ()
    """Guards that judge the final answer, in order (PII, grounding, G3)."""
    escalation: Escalation = field(default_factory=Escalation)
    """When the run pauses for a person (G4) and the taint rule (G5)."""
    user: str | None = None
    """Who the run is for (keys ``scope="user"`` spending limits; kept in `run_started` for resume)."""
    defined_in: dict[str, str] | None = None
    """Where the agent was defined (module, file), so ``keel resume RUN_ID`` can find it again."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """The agent's retry policy: model calls, and tools that declare none (E1)."""
    fallback_models: tuple[Model, ...] = ()
    """Models tried in order when the current one keeps failing (E1)."""
    loop_detector: LoopDetector = field(default_factory=LoopDetector)
    """Which loops end the run, and how (E4)."""
    observers: tuple[Observer, ...] = ()
    """Watch the journal as it is written (telemetry)."""
    cache: CacheBackend | None = None
    """Where cached responses and tool results live (C2); None: caching is off."""
    cache_policy: CachePolicy | None = None
    """What is cached."""

    @property
    def run_info(self) -> RunInfo:
        """Who the run is, for observers."""
        return RunInfo(self.run_id, self.agent, self.model.name, self.session_id, self.user)


@dataclass(slots=True)
class RunState:
    """Everything a run accumulates; the steps read and update it, the journal records it."""

    spec: RunSpec
    messages: list[Message]
    row: RunRecord
    """The run's row in the store, as written when it started."""
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)
    events: list[Event] = field(default_factory=list)
    seq: int = 0
    steps: int = 0
    """Model turns taken."""
    rejections: int = 0
    """Tool calls refused by validation."""
    output_retries: int = 0
    """Corrections asked for after the final answer failed its schema."""
    phase: Phase = Phase.EXECUTION
    """The phase the next model call is attributed to."""
    informed_by: list[int] = field(default_factory=list)
    """Seqs of the events whose data the next model call will see (decision trace)."""
    last_text: str | None = None
    """The latest text the model produced: the best output when no final answer comes."""
    tool_results: list[str] = field(default_factory=list)
    """Successful tool results in order: the fallback output when the model produced no text."""
    trusted_results: list[str] = field(default_factory=list)
    """The successful results of tools declared ``trusted``, in order (`GuardContext.trusted_sources`)."""
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    journal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serializes numbering and committing of events (parallel tool calls record concurrently)."""
    call_ordinals: dict[str, CallOrdinals] = field(default_factory=dict)
    """Per distinct tool call (tool + canonical arguments): which idempotency ordinals are taken."""
    call_ids: set[str] = field(default_factory=set)
    """Tool-call ids used so far: a repeated or empty id from the model is renamed (`propose`), so a call id
    names one call of the run (the journal, the review queue and resume key on it)."""
    tainted_by: str | None = None
    """What untrusted data the run has read first (a tool's name, or the flagged input); None while clean."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Tools given up on in this run (every retry and alternative failed), with why: not run again (E1)."""
    loop: LoopMemory = field(default_factory=LoopMemory)
    """What the loop detector has seen (rebuilt from `checkpoint` events on resume)."""
    last_output_allowance: int = 1 << 30
    """The output tokens the latest model call was allowed (below `RunSpec.max_output_tokens` when the budget
    shrank it); a cut-off answer is asked for again only when it had the full allowance."""
    model: Model | None = None
    """The model in use: `RunSpec.model` until a fallback model replaces it for the rest of the run."""
    tiers: TierTrack = field(default_factory=TierTrack)
    cache_down: bool = False
    """The cache failed in this run: it is not used again (one `fallback_used` said so)."""
    """Where the run stands in its `ModelTiers` (escalations, the sticky floor); unused without tiers."""
    spend_review_at_usd: float | None = None
    """The spend past which the next model call waits for a person: `Escalation.max_cost_usd` until a person
    approves more (then the approved call's spend plus another `max_cost_usd`)."""

    @property
    def current_model(self) -> Model:
        """The model the next call goes to: a fallback model, else the tier the phase and escalations pick."""
        if self.model is not None:
            return self.model
        tiers = self.spec.model
        if isinstance(tiers, ModelTiers):
            return tiers.pick(self.phase, floor=max(self.tiers.floor, self.tiers.step)).model
        return tiers

    def time_for_work(self) -> float | None:
        """Seconds ordinary work (turns, tool calls, retry waits) may still use; None without a wall-time budget.

        The rest of the run's time is kept for the best-effort answer (`Budget.answer_reserve`).
        """
        remaining = self.remaining_s()
        return None if remaining is None else remaining - self.spec.budget.reserved_s

    def remaining_s(self) -> float | None:
        """Seconds left of the run's wall-time budget, or None when it has none."""
        timeout = self.spec.budget.timeout_s
        return None if timeout is None else timeout - (time.monotonic() - self.started)


@dataclass(slots=True)
class CallOrdinals:
    """Idempotency ordinals of one distinct call: a failed call frees its ordinal, so a retry reuses its key."""

    next: int = 0
    free: list[int] = field(default_factory=list)

    def take(self) -> int:
        """The lowest free ordinal, else a new one."""
        if self.free:
            self.free.sort()
            return self.free.pop(0)
        self.next += 1
        return self.next - 1

    def release(self, ordinal: int) -> None:
        """Give back the ordinal of a call that did not complete."""
        self.free.append(ordinal)


@dataclass(frozen=True, slots=True)
class Finish:
    """How the run ends: a status, the reason, and optionally its output (else the best gathered)."""

    status: RunStatus
    reason: str
    output: Any = UNSET
    not_done: tuple[str, ...] = ()
    salvage: bool = False
    """A bounded stop after which the model may still give a best-effort answer from what the run gathered
    (budget, steps, time, loop, rejections); not after a provider failure, a spending limit or a person's no."""
