"""Model tiering (C1): each phase goes to the cheapest model able to do it, and up a tier when that one falls short.

`ModelTiers` is usable wherever a model is (``Agent("desk", ModelTiers(small=..., large=...))``). The pipeline asks
it which tier each call goes to: routing, classification, validation and summarization on the small model,
planning on the large one, execution on the tier the agent chose. When a cheaper tier's turn fails validation (an
invalid or unknown tool call, an answer off its schema, an empty answer) or reports a confidence below
`min_confidence`, the correction goes to the next tier up: bounded by `max_escalations` per run, journaled as
`fallback_used` with the reason and the tier, and the failed call stays charged. After a step the higher tier got
right, the run drops back to the phase's tier; after `sticky_after` escalations it stays up for the rest of the run
(a task the small model keeps failing is not worth a failed call per step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from keel.errors import ConfigError
from keel.journal import Phase
from keel.models import infer_model
from keel.models.base import Model, ModelRequest, ModelResponse
from keel.models.pricing import Price

__all__ = ["DEFAULT_PHASES", "ModelTiers", "Tier", "TierName"]

TierName = Literal["small", "medium", "large"]
"""The tiers, cheapest first."""

DEFAULT_PHASES: Mapping[Phase, TierName | Literal["execution"]] = {
    Phase.ROUTING: "small",
    Phase.VALIDATION: "small",
    Phase.SUMMARIZATION: "small",
    Phase.PLANNING: "large",
    Phase.REPLANNING: "large",
    Phase.EXECUTION: "execution",
    Phase.RECOVERY: "execution",
}
"""Which tier each phase starts on (``"execution"``: the tier the agent runs its work on)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier: its name, its position (0 = cheapest) and its model."""

    name: TierName
    level: int
    model: Model


class ModelTiers(Model):
    """A small, an optional medium and a large model, and which phase goes where.

    Args:
        small: the cheap model (``"openai:gpt-4o-mini"`` or a `Model`).
        large: the capable one; a tier map without it is a `ConfigError`.
        medium: an optional tier between them.
        execution: the tier work (tool calls, answers) starts on.
        phases: overrides of `DEFAULT_PHASES`, phase → tier name.
        min_confidence: an answer reporting less confidence (0..1) is asked again one tier up.
        max_escalations: tier escalations a run may make at most.
        sticky_after: after this many escalations the run stays on the higher tier.

    Raises:
        ConfigError: an unknown tier name, a missing large model, or bounds out of range.
    """

    def __init__(
        self,
        small: Model | str,
        large: Model | str | None,
        medium: Model | str | None = None,
        *,
        execution: TierName = "small",
        phases: Mapping[Phase | str, TierName] | None = None,
        min_confidence: float | None = None,
        max_escalations: int = 3,
        sticky_after: int = 2,
    ) -> None:
        if large is None:
            raise ConfigError("ModelTiers needs a large model: the tier that cheaper ones escalate to")
        names: list[tuple[TierName, Model | str]] = [("small", small)]
        if medium is not None:
            names.append(("medium", medium))
        names.append(("large", large))
        self.tiers: tuple[Tier, ...] = tuple(Tier(name, i, infer_model(m)) for i, (name, m) in enumerate(names))
        self._by_name: dict[str, Tier] = {tier.name: tier for tier in self.tiers}
        self.execution = self._tier(execution, "execution")
        self.phases = {
            phase: self._phase_tier(phase, (phases or {}).get(phase, DEFAULT_PHASES[phase])) for phase in Phase
        }
        for key in phases or {}:
            if key not in {p.value for p in Phase}:
                raise ConfigError(
                    f"ModelTiers.phases: unknown phase {key!r}; phases are {', '.join(p.value for p in Phase)}"
                )
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise ConfigError(f"ModelTiers.min_confidence must be between 0 and 1, got {min_confidence}")
        if max_escalations < 0 or sticky_after < 1:
            raise ConfigError("ModelTiers: max_escalations must be >= 0 and sticky_after >= 1")
        self.min_confidence = min_confidence
        self.max_escalations = max_escalations
        self.sticky_after = sticky_after
        self.name = f"tiers:{'/'.join(t.model.name for t in self.tiers)}"

    def _tier(self, name: str, what: str) -> Tier:
        tier = self._by_name.get(name)
        if tier is None:
            known = ", ".join(t.name for t in self.tiers)
            raise ConfigError(f"ModelTiers: unknown tier {name!r} for {what}; this map has {known}")
        return tier

    def _phase_tier(self, phase: Phase, name: str) -> Tier:
        return self.execution if name == "execution" else self._tier(name, f"phase {phase.value!r}")

    @property
    def top(self) -> Tier:
        """The largest tier."""
        return self.tiers[-1]

    @property
    def models(self) -> tuple[Model, ...]:
        """Every tier's model, cheapest first (each must be priced when the agent has money bounds)."""
        return tuple(tier.model for tier in self.tiers)

    def for_phase(self, phase: Phase) -> Tier:
        """The tier a call of `phase` starts on."""
        return self.phases[phase]

    def pick(self, phase: Phase, *, floor: int = 0) -> Tier:
        """The tier of a call in `phase`: the phase's tier, or the tier at level `floor` if that one is higher."""
        return self.at(max(self.for_phase(phase).level, floor))

    def at(self, level: int) -> Tier:
        """The tier at `level`, clamped to the largest."""
        return self.tiers[min(max(level, 0), len(self.tiers) - 1)]

    @property
    def price(self) -> Price | None:
        """The execution tier's price (what most calls cost); each call is charged at its own tier's price."""
        return self.execution.model.price

    def count_input_tokens(self, request: ModelRequest) -> int:
        """An upper bound over every tier (a call may go to any of them)."""
        return max(tier.model.count_input_tokens(request) for tier in self.tiers)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Outside a run's pipeline, a request goes to the execution tier."""
        return await self.execution.model.request(request)

    async def aclose(self) -> None:
        """Close every tier's model."""
        for tier in self.tiers:
            await tier.model.aclose()
