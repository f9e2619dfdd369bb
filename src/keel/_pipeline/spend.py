"""Spend: hold a call's worst case under the agent's spending limits, then settle what it really cost (G2).

The per-run `Budget` is checked by `authorize` in memory; `SpendLimit`s span runs and processes, so their
ledger lives in the store. Before a model call its worst case (counted input + allowed output, priced) is
reserved under every applicable limit's key; a limit that would be crossed refuses the call and the run ends
PARTIAL, naming the limit. After the call the reservation is settled with the actual usage, or released when
nothing was spent. A reservation that outlives its process expires after its TTL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.cost.ledger import Reservation, SpendLedger, entry_id_for
from keel.journal import Event, EventKind
from keel.result import RunStatus
from keel.store.base import Store

__all__ = ["DEFAULT_CALL_S", "Hold", "hold_spend", "hold_tool_spend"]

DEFAULT_CALL_S = 600.0
"""How long a model call may take when the run has no wall-time budget; also the reservation's lifetime."""
_TTL_MARGIN_S = 60.0


@dataclass(slots=True)
class Hold:
    """A reservation in progress; settled or released exactly once."""

    ledger: SpendLedger
    reservation: Reservation
    closed: bool = False

    @classmethod
    def journaled(cls, store: Store, run_id: str, event: Event) -> Hold:
        """The hold a `budget_reserved` event recorded (to settle one its process died holding)."""
        payload = event.payload
        expires_at = event.ts + float(payload.get("ttl_s", 0.0))
        reservation = Reservation(
            payload["entry_id"],
            run_id,
            tuple(payload.get("keys", ())),
            event.ts,
            float(payload.get("usd", 0.0)),
            int(payload.get("tokens", 0)),
            expires_at,
        )
        return cls(SpendLedger(store), reservation)

    async def settle(self, usd: float, tokens: int) -> None:
        """Record what the call actually spent in place of the reservation (shielded from cancellation)."""
        if not self.closed:
            await asyncio.shield(self.ledger.settle(self.reservation, usd, tokens))
            self.closed = True  # only once the ledger has it: a failed settle leaves the reservation to expire

    async def release(self) -> None:
        """Give the reservation back: the call spent nothing (shielded: it runs even while being cancelled)."""
        if not self.closed:
            await asyncio.shield(self.ledger.release(self.reservation))
            self.closed = True


async def hold_spend(state: RunState, usd: float, tokens: int) -> Hold | Finish | None:
    """Reserve a call's worst case; None when no limit applies, a `Finish` when a limit refuses it."""
    limits = state.spec.spend_limits
    if not limits:
        return None
    remaining = state.remaining_s()
    ttl_s = (remaining if remaining is not None else DEFAULT_CALL_S) + _TTL_MARGIN_S
    ledger = SpendLedger(state.spec.store)
    held = await ledger.reserve(
        state.spec.run_id,
        limits,
        usd,
        tokens,
        ttl_s=max(ttl_s, _TTL_MARGIN_S),
        entry_id=entry_id_for(state.spec.run_id, state.seq + 1),  # the seq its budget_reserved event will take
    )
    if isinstance(held, Reservation):
        hold = Hold(ledger, held)
        try:
            await record(
                state,
                EventKind.BUDGET_RESERVED,
                {"entry_id": held.entry_id, "keys": list(held.keys), "usd": usd, "tokens": tokens, "ttl_s": ttl_s},
            )
        except BaseException:
            await hold.release()  # not journaled, not used: give it back rather than leave it to expire
            raise
        return hold
    await record(
        state,
        EventKind.BUDGET_REFUSED,
        {
            "limit": held.ceiling.name,
            "key": held.key,
            "window": held.window,
            "ceiling": held.ceiling.value,
            "spent": held.spent,
            "reserved": held.reserved,
            "needed": held.requested,
        },
    )
    return Finish(RunStatus.PARTIAL, held.reason)


async def hold_tool_spend(state: RunState, usd: float) -> Hold | Finish | None:
    """Check a turn's paid tool calls (``@tool(cost_usd=…)``) against the run's budget, then hold them.

    The per-run `Budget.max_cost_usd` is checked here, in memory, as `authorize` checks model calls; the
    spending limits through the ledger. Either refusal ends the run PARTIAL before any of the calls runs.
    """
    ceiling = state.spec.budget.max_cost_usd
    if ceiling is not None and state.usage.cost_usd + usd > ceiling:
        remaining = max(0.0, ceiling - state.usage.cost_usd)
        await record(state, EventKind.BUDGET_REFUSED, {"limit": "max_cost_usd", "needed": usd, "remaining": remaining})
        return Finish(
            RunStatus.PARTIAL,
            f"budget exhausted: the paid tool calls ({usd:g} USD) would exceed max_cost_usd={ceiling:g}",
            salvage=True,
        )
    return await hold_spend(state, usd, 0)
