"""Cost management: hard spending limits and the ledger that enforces them across runs and processes (G2)."""

from __future__ import annotations

from keel.cost.ledger import Refusal, Reservation, SpendLedger, WindowTotals
from keel.cost.limits import WINDOW_SECONDS, Ceiling, Scope, SpendLimit, Unit, Window, applicable_limits

__all__ = [
    "WINDOW_SECONDS",
    "Ceiling",
    "Refusal",
    "Reservation",
    "Scope",
    "SpendLedger",
    "SpendLimit",
    "Unit",
    "Window",
    "WindowTotals",
    "applicable_limits",
]
