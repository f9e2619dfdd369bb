"""Hard spending limits (G2): ceilings on money and tokens per rolling hour and day, shared across runs.

A `Budget` bounds one run; a `SpendLimit` bounds everything charged to one *ledger key* over time: one agent,
one session, one user, or the whole store. The limits are enforced by the `SpendLedger` before money is
spent, and hold across processes because the ledger lives in the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from keel.errors import ConfigError

__all__ = ["WINDOW_SECONDS", "Ceiling", "Scope", "SpendLimit", "Unit", "Window", "applicable_limits"]

Scope = Literal["agent", "session", "user", "global"]
"""Whose spend a limit counts: the agent's (all its runs), a session's, a user's, or everyone's."""

Window = Literal["hour", "day"]
"""A rolling window: the last 3600 or the last 86400 seconds, not the calendar hour or day."""

Unit = Literal["usd", "tokens"]

WINDOW_SECONDS: dict[Window, float] = {"hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True, slots=True)
class Ceiling:
    """One ceiling of a `SpendLimit`, e.g. ``per_hour_usd=5`` is ``Ceiling("per_hour_usd", "hour", "usd", 5)``."""

    name: str
    window: Window
    unit: Unit
    value: float


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """Ceilings on spend per rolling hour and day, for one scope.

    At least one ceiling must be set; each one set must be a finite number above zero (`ConfigError`
    otherwise). Token ceilings are whole numbers (``1e6`` is accepted as 1 000 000).

    Spend is counted per *ledger key* (see `key_for`): two agents with ``scope="global"`` limits draw on
    the same global total, each checked against its own ceiling. A ``"session"`` limit does not apply to a run
    without a session id, nor a ``"user"`` limit to a run without a user: there is nothing to count it under.

    Example:
        ``SpendLimit(per_hour_usd=5, per_day_usd=50, scope="agent")``: every run of the agent together may
        spend at most 5 USD in any 60 minutes and 50 USD in any 24 hours.
    """

    per_hour_usd: float | None = None
    per_day_usd: float | None = None
    per_hour_tokens: int | None = None
    per_day_tokens: int | None = None
    scope: Scope = "agent"

    def __post_init__(self) -> None:
        if self.scope not in get_args(Scope):
            raise ConfigError(
                f"SpendLimit.scope must be one of {', '.join(map(repr, get_args(Scope)))}, got {self.scope!r}"
            )
        for ceiling in _declared(self):
            value = ceiling.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"SpendLimit.{ceiling.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"SpendLimit.{ceiling.name} must be a finite number above zero, got {value!r}")
            if ceiling.unit == "tokens":
                if value != int(value):
                    raise ConfigError(f"SpendLimit.{ceiling.name} must be a whole number of tokens, got {value!r}")
                object.__setattr__(self, ceiling.name, int(value))  # frozen: normalize 1e6 to 1000000 once
        if not self.ceilings():
            raise ConfigError(
                "SpendLimit needs at least one of per_hour_usd, per_day_usd, per_hour_tokens, per_day_tokens"
            )

    def ceilings(self) -> tuple[Ceiling, ...]:
        """The ceilings that are set, hour before day, money before tokens."""
        return _declared(self)

    def key_for(self, *, agent: str, session_id: str | None = None, user: str | None = None) -> str | None:
        """The ledger key this limit counts a run's spend under, or None when it does not apply to the run.

        ``"agent:support"``, ``"session:u42"``, ``"user:alice"`` or ``"global"``. A session (user) limit does
        not apply to a run without a session id (user).
        """
        if self.scope == "agent":
            return f"agent:{agent}"
        if self.scope == "session":
            return None if session_id is None else f"session:{session_id}"
        if self.scope == "user":
            return None if user is None else f"user:{user}"
        return "global"

    def as_payload(self) -> dict[str, float | str]:
        """The ceilings set, and the scope, as JSON (journaled with each run for dashboards)."""
        return {"scope": self.scope, **{c.name: c.value for c in self.ceilings()}}

    def __str__(self) -> str:
        parts = [f"{c.name}={c.value:g}" for c in self.ceilings()]
        return f"SpendLimit({', '.join(parts)}, scope={self.scope!r})"


def applicable_limits(
    limits: Iterable[SpendLimit], *, agent: str, session_id: str | None = None, user: str | None = None
) -> list[tuple[SpendLimit, str]]:
    """The limits that apply to a run, each with the ledger key it counts the run under (input to `reserve`)."""
    pairs: list[tuple[SpendLimit, str]] = []
    for limit in limits:
        key = limit.key_for(agent=agent, session_id=session_id, user=user)
        if key is not None:
            pairs.append((limit, key))
    return pairs


def _declared(limit: SpendLimit) -> tuple[Ceiling, ...]:
    fields: tuple[tuple[str, Window, Unit, float | None], ...] = (
        ("per_hour_usd", "hour", "usd", limit.per_hour_usd),
        ("per_hour_tokens", "hour", "tokens", limit.per_hour_tokens),
        ("per_day_usd", "day", "usd", limit.per_day_usd),
        ("per_day_tokens", "day", "tokens", limit.per_day_tokens),
    )
    return tuple(Ceiling(name, window, unit, value) for name, window, unit, value in fields if value is not None)
