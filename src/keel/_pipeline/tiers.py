"""Tiering in the pipeline (C1): which tier of a `ModelTiers` the next call goes to, and escalating it.

One place for the arithmetic, used live and by `replay`. A call goes to the highest of: its phase's tier, the run's
sticky floor, and the current step's level. A turn found wanting (a rejected call, an answer to correct) sets the
step's level one tier above the turn's (an escalation, journaled), or at the turn's own tier when there is none
higher — so a correction never goes to a cheaper tier than the turn it corrects, whatever its phase. A step that
went right (no rejected call) clears the step's level; `ModelTiers.sticky_after` escalations raise the floor.
"""

from __future__ import annotations

from typing import Any

from keel._pipeline.record import record
from keel._pipeline.state import RunState
from keel.cost.tiers import ModelTiers, Tier
from keel.journal import EventKind

__all__ = ["current_tier", "escalate_tier", "replay_escalation", "replay_kept", "step_went_right", "tier_fields"]


def current_tier(state: RunState) -> Tier | None:
    """The tier the next call goes to; None when the run has no tiers or a fallback model has replaced them."""
    tiers = state.spec.model
    if not isinstance(tiers, ModelTiers) or state.model is not None:
        return None
    return tiers.pick(state.phase, floor=max(state.tiers.floor, state.tiers.step))


def tier_fields(state: RunState, tier: Tier | None) -> dict[str, Any]:
    """What a `model_called` event records of its tier (nothing without tiers): the decision trace shows the mix."""
    if tier is None:
        return {}
    if state.tiers.step and tier.level == state.tiers.step > state.tiers.floor:
        why = f"escalated to {tier.name}: a cheaper tier fell short in this step"
    elif state.tiers.floor and tier.level == state.tiers.floor:
        why = f"kept on {tier.name}: a cheaper tier fell short {state.tiers.escalations} times in this run"
    else:
        why = f"{state.phase.value} runs on {tier.name}"
    return {"tier": tier.name, "tier_reason": why}


async def escalate_tier(state: RunState, reason: str, trigger: str) -> bool:
    """The turn just made fell short: the next call goes one tier up (journaled as `fallback_used`).

    False when there is no higher tier or no escalation left: the next call then stays on this turn's tier.
    """
    tiers, tier = state.spec.model, current_tier(state)
    if not isinstance(tiers, ModelTiers) or tier is None:
        return False
    if tier.level >= tiers.top.level or state.tiers.escalations >= tiers.max_escalations:
        state.tiers.step = max(state.tiers.step, tier.level)
        return False
    higher = tiers.at(tier.level + 1)
    payload = {"from": tier.model.name, "to": higher.model.name, "reason": reason, "tier": higher.name,
               "trigger": trigger}  # fmt: skip
    await record(state, EventKind.FALLBACK_USED, payload)
    _escalated(state, tiers, higher.level)
    return True


def _escalated(state: RunState, tiers: ModelTiers, level: int) -> None:
    track = state.tiers
    track.escalations += 1
    track.step = level
    if track.escalations >= tiers.sticky_after:
        track.floor = max(track.floor, level)


def replay_escalation(state: RunState, payload: dict[str, Any]) -> None:
    """Apply a journaled tier escalation to a replayed run."""
    tiers = state.spec.model
    if isinstance(tiers, ModelTiers):
        level = next((t.level for t in tiers.tiers if t.name == payload.get("tier")), tiers.top.level)
        _escalated(state, tiers, level)


def replay_kept(state: RunState, tier_name: object) -> None:
    """A replayed turn found wanting without an escalation: the next call stays on that turn's tier (`tier_name`)."""
    tiers = state.spec.model
    if isinstance(tiers, ModelTiers):
        level = next((t.level for t in tiers.tiers if t.name == tier_name), 0)
        state.tiers.step = max(state.tiers.step, level)


def step_went_right(state: RunState) -> None:
    """A step with no rejected call: the next one starts on its phase's tier again (or the sticky floor)."""
    state.tiers.step = 0
