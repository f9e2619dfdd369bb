"""Per-request budgets: the hard bounds of one run.

A `Budget` is checked *before* each model call against the call's worst case (input tokens counted before
the call plus the maximum output tokens, priced), so a run never spends past it. When the remaining budget
cannot cover a call, the run stops with status PARTIAL and its best output; it never raises and never asks
for more tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.errors import ConfigError

__all__ = ["Budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Hard limits of one run. `None` means no limit of that kind (the others still apply)."""

    max_tokens: int | None = None
    """Input plus output tokens over all model calls of the run."""
    max_cost_usd: float | None = None
    """Money over all model calls of the run, at the pricing table's prices."""
    max_steps: int = 25
    """Model turns (each turn may run several tool calls)."""
    timeout_s: float | None = 600.0
    """Wall time of the whole run; model and tool calls get what is left of it."""
    max_tool_rejections: int = 3
    """Rejected tool calls (unknown tool, invalid arguments) tolerated before the run stops."""
    answer_reserve: float = 0.1
    """The share of `max_tokens`, `max_cost_usd` and `timeout_s` that ordinary turns leave untouched, so that a
    run stopped by a bound can still pay for one best-effort answer from what it gathered (0 turns it off)."""
    max_tool_calls_per_step: int = 16
    """Tool calls of one model turn that may run; the turn's further calls are rejected, and count as one
    rejection together."""

    @property
    def reserved_s(self) -> float:
        """Seconds of `timeout_s` kept for the best-effort answer."""
        return 0.0 if self.timeout_s is None else self.timeout_s * self.answer_reserve

    def __post_init__(self) -> None:
        checks: list[tuple[str, float | None, bool]] = [
            ("max_tokens", self.max_tokens, False),
            ("max_cost_usd", self.max_cost_usd, True),
            ("max_steps", self.max_steps, False),
            ("timeout_s", self.timeout_s, True),
            ("max_tool_rejections", self.max_tool_rejections, False),
            ("max_tool_calls_per_step", self.max_tool_calls_per_step, False),
        ]
        for name, value, may_be_zero_cost in checks:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"Budget.{name} must be a number, got {value!r}")
            if value < 0 or (value == 0 and not may_be_zero_cost):
                raise ConfigError(f"Budget.{name} must be positive, got {value!r}")
        per_step = self.max_tool_calls_per_step
        if per_step is None or isinstance(per_step, float):  # a count of calls, and every turn has one
            raise ConfigError(f"Budget.max_tool_calls_per_step must be a whole number, got {per_step!r}")
        reserve = self.answer_reserve
        if isinstance(reserve, bool) or not isinstance(reserve, int | float) or not 0 <= reserve <= 0.5:
            raise ConfigError(f"Budget.answer_reserve must be a share between 0 and 0.5, got {reserve!r}")
