"""Token and cost accounting for one run, broken down by phase (O3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.journal import Event, EventKind, Phase

__all__ = ["PhaseUsage", "Usage"]


@dataclass(slots=True)
class PhaseUsage:
    """Tokens and cost spent in one phase of a run."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0
    """Model calls made in this phase."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class Usage:
    """What a run consumed: model tokens, money, calls; totals and per phase."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0
    """Model calls made, failed ones included (a failed call is counted but charged nothing)."""
    tool_calls: int = 0
    """Tool executions (rejected calls are not counted: they never ran)."""
    by_phase: dict[Phase, PhaseUsage] = field(default_factory=dict)
    """The same figures per phase; keys are `Phase` values, which compare equal to their names."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def _phase(self, phase: Phase) -> PhaseUsage:
        per_phase = self.by_phase.get(phase)
        if per_phase is None:
            per_phase = self.by_phase[phase] = PhaseUsage()
        return per_phase

    def add_tool_cost(self, phase: Phase, cost_usd: float) -> None:
        """Account what paid tool calls cost (``@tool(cost_usd=…)``) to the totals and to `phase`."""
        self.cost_usd += cost_usd
        self._phase(phase).cost_usd += cost_usd

    def add_event(self, event: Event) -> None:
        """Account what one journal event spent: a model call (tokens, cost), a tool call (its cost).

        The one reading of the journal's figures, shared by replay (a resumed run's usage) and reports (O3).
        """
        if event.kind is EventKind.MODEL_CALLED:
            self.add_request(event.phase, event.tokens_in, event.tokens_out, event.cost_usd)
        elif event.kind is EventKind.TOOL_CALLED:
            self.tool_calls += 1
            if event.cost_usd:
                self.add_tool_cost(event.phase, event.cost_usd)

    def add_request(self, phase: Phase, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """Account one model call to the totals and to `phase`."""
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd
        self.requests += 1
        per_phase = self._phase(phase)
        per_phase.input_tokens += input_tokens
        per_phase.output_tokens += output_tokens
        per_phase.cost_usd += cost_usd
        per_phase.requests += 1
