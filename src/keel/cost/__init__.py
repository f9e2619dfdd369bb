"""Cost management: spending limits (G2), model tiering (C1), caching (C2) and batching (C4).

- `SpendLimit` and the `SpendLedger`: ceilings on money and tokens per hour and day, across runs and processes.
- `ModelTiers`: each phase on the cheapest model able to do it, one tier up when that one falls short.
- `CachePolicy` and the backends (`StoreCache`, `MemoryCache`, `RedisCache`), `PlanCache`, `cache_key`.
- `Batcher`: small independent sub-tasks sent as one model call, split back and validated.

Best-effort budgets (C3) are the run's `Budget.answer_reserve`: see `keel.budget`.
"""

from __future__ import annotations

from keel.cost._cache_keys import cache_key
from keel.cost.batch import BatchAnswer, Batcher
from keel.cost.cache import (
    CacheBackend,
    CachePolicy,
    MemoryCache,
    PlanCache,
    RedisCache,
    StoreCache,
    cache_backend,
)
from keel.cost.ledger import Refusal, Reservation, SpendLedger, WindowTotals
from keel.cost.limits import WINDOW_SECONDS, Ceiling, Scope, SpendLimit, Unit, Window, applicable_limits
from keel.cost.tiers import ModelTiers, Tier, TierName

__all__ = [
    "WINDOW_SECONDS",
    "BatchAnswer",
    "Batcher",
    "CacheBackend",
    "CachePolicy",
    "Ceiling",
    "MemoryCache",
    "ModelTiers",
    "PlanCache",
    "RedisCache",
    "Refusal",
    "Reservation",
    "Scope",
    "SpendLedger",
    "SpendLimit",
    "StoreCache",
    "Tier",
    "TierName",
    "Unit",
    "Window",
    "WindowTotals",
    "applicable_limits",
    "cache_backend",
    "cache_key",
]
