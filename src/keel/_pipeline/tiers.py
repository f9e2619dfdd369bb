"""Tiering in the pipeline (C1): which tier of a `ModelTiers` the next call goes to, and escalating it.

One place for the arithmetic, used live and by `replay`: the next call's level is the phase's tier, or the run's
sticky floor when higher, plus the escalation of the current step. A step that went right (no rejected call)
drops the step's escalation; `ModelTiers.sticky_after` escalations make the floor the escalated tier.
"""

from __future__ import annotations

from typing import Any

from keel._pipeline.record import record
from keel._pipeline.state import RunState
from keel.cost.tiers import ModelTiers, Tier
from keel.journal import EventKind

__all__ = ["current_tier", "escalate_tier", "replay_escalation", "step_went_right", "tier_fields"]


def current_tier(state: RunState) -> Tier | None:
    """The tier the next call goes to; None when the run has no tiers or a fallback model has replaced them."""
    tiers = state.spec.model
    if not isinstance(tiers, ModelTiers) or state.model is not None:
        return None
    return tiers.pick(state.phase, floor=state.tiers.floor, boost=state.tiers.boost)


def tier_fields(state: RunState, tier: Tier | None) -> dict[str, Any]:
    """What a `model_called` event records of its tier (nothing without tiers): the decision trace shows the mix."""
    if tier is None:
        return {}
    if state.tiers.boost:
        why = f"escalated to {tier.name}: a cheaper tier fell short in this step"
    elif state.tiers.floor and tier.level == state.tiers.floor:
        why = f"kept on {tier.name}: a cheaper tier fell short {state.tiers.escalations} times in this run"
    else:
        why = f"{state.phase.value} runs on {tier.name}"
    return {"tier": tier.name, "tier_reason": why}


async def escalate_tier(state: RunState, reason: str, trigger: str) -> bool:
    """Send the next call one tier up, journaled as `fallback_used`; False when there is no higher tier or budget."""
    tiers, tier = state.spec.model, current_tier(state)
    if not isinstance(tiers, ModelTiers) or tier is None or tier.level >= tiers.top.level:
        return False
    if state.tiers.escalations >= tiers.max_escalations:
        return False
    higher = tiers.at(tier.level + 1)
    payload = {"from": tier.model.name, "to": higher.model.name, "reason": reason, "tier": higher.name,
               "trigger": trigger}  # fmt: skip
    await record(state, EventKind.FALLBACK_USED, payload)
    _apply(state, tiers, higher.level)
    return True


def _apply(state: RunState, tiers: ModelTiers, level: int) -> None:
    track = state.tiers
    track.escalations += 1
    track.boost = level - max(tiers.for_phase(state.phase).level, track.floor)
    if track.escalations >= tiers.sticky_after:
        track.floor, track.boost = max(track.floor, level), 0


def replay_escalation(state: RunState, payload: dict[str, Any]) -> None:
    """Apply a journaled tier escalation to a replayed run."""
    tiers = state.spec.model
    if isinstance(tiers, ModelTiers):
        level = next((t.level for t in tiers.tiers if t.name == payload.get("tier")), tiers.top.level)
        _apply(state, tiers, level)


def step_went_right(state: RunState) -> None:
    """A step with no rejected call: the next one starts on its phase's tier again (or the sticky floor)."""
    state.tiers.boost = 0
