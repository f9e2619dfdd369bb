"""Authorize a model call: its worst case must fit in what is left of the run's budget (G2, C3).

The worst case is the input tokens counted before the call plus the maximum output tokens, priced. When the
full output allowance does not fit, the call's `max_output_tokens` is lowered to what does fit, so a run uses
its budget to the end without ever crossing it; below `MIN_OUTPUT_TOKENS` the call is refused instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keel._pipeline.state import RunState

__all__ = ["MIN_OUTPUT_TOKENS", "Allowed", "Refused", "authorize_model_call"]

MIN_OUTPUT_TOKENS = 16
"""A call that cannot afford this many output tokens is not worth making."""


@dataclass(frozen=True, slots=True)
class Allowed:
    """The call may go ahead with at most `max_output_tokens`."""

    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The call would cross a limit."""

    limit: str
    """Which limit, e.g. ``"max_tokens=2000"``."""
    needed: float
    remaining: float


def authorize_model_call(state: RunState, input_tokens: int, *, reserve: bool = True) -> Allowed | Refused:
    """Check the call's worst case against the run's token and cost budgets.

    Ordinary turns (`reserve`) leave `Budget.answer_reserve` of each budget untouched, so that the best-effort
    answer of a run stopped by its budget can always be paid for; that answer's own call may use all of it.
    """
    spec = state.spec
    budget = spec.budget
    share = 1.0 - budget.answer_reserve if reserve else 1.0
    allowance = spec.max_output_tokens
    floor = min(MIN_OUTPUT_TOKENS, allowance)
    if budget.max_tokens is not None:
        remaining = math.floor(budget.max_tokens * share) - state.usage.total_tokens
        fits = remaining - input_tokens
        if fits < floor:
            return Refused(f"max_tokens={budget.max_tokens}", input_tokens + floor, remaining)
        allowance = min(allowance, fits)
    price = state.current_model.price
    if budget.max_cost_usd is not None and price is not None:
        remaining_usd = budget.max_cost_usd * share - state.usage.cost_usd
        input_usd = price.cost(input_tokens, 0)
        if price.output > 0:
            fits = math.floor((remaining_usd - input_usd) * 1_000_000 / price.output)
        else:
            fits = allowance if remaining_usd >= input_usd else -1
        if fits < floor:
            needed = input_usd + price.cost(0, floor)
            return Refused(f"max_cost_usd={budget.max_cost_usd}", round(needed, 8), round(remaining_usd, 8))
        allowance = min(allowance, fits)
    return Allowed(allowance)
