"""The spend ledger: reserve the worst case before spending, settle the actual after, release on failure (G2).

Every applicable `SpendLimit` is checked against rolling windows (the last 3600 s and 86400 s) of settled
spend plus live reservations plus the new request, in one store transaction that is serialized across
processes; so concurrent runs, in any number of processes sharing a store, can never together cross a limit
(as long as actual usage stays within what was reserved).

A reservation carries an expiry (``ttl_s``). A process that dies before settling leaves its reservation
behind; after the expiry it stops counting and is purged by a later reservation. `ttl_s` must therefore
cover the longest time between reserving and settling (the call's timeout), or a slow call's spend can be
settled after others have reused its headroom.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from keel.cost.limits import WINDOW_SECONDS, Ceiling, SpendLimit, Unit, Window
from keel.errors import ConfigError
from keel.store.base import SpendCheck, SpendEntry, SpendTotals, Store

__all__ = ["Refusal", "Reservation", "SpendLedger", "WindowTotals", "entry_id_for"]

_NANO = 1_000_000_000
"""Nano-dollars per dollar: the ledger counts money in integers so sums compare exactly with ceilings."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Headroom held under every applicable limit's key until it is settled, released, or expires."""

    entry_id: str
    run_id: str
    keys: tuple[str, ...]
    """The ledger keys it counts under; empty when no limit applied (settling it records nothing)."""
    ts: float
    usd: float
    tokens: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reservation that would cross a limit; nothing was reserved.

    ``spent + reserved + requested > ceiling`` in `window` under `key`, in `unit` (USD or tokens).
    """

    limit: SpendLimit
    ceiling: Ceiling
    key: str
    spent: float
    """Settled spend in the window."""
    reserved: float
    """Other runs' live reservations in the window."""
    requested: float

    @property
    def window(self) -> Window:
        """``"hour"`` or ``"day"``."""
        return self.ceiling.window

    @property
    def unit(self) -> Unit:
        """``"usd"`` or ``"tokens"``."""
        return self.ceiling.unit

    @property
    def reason(self) -> str:
        """One line naming the limit, for a run's report."""
        unit = " USD" if self.unit == "usd" else " tokens"
        return (
            f"spending limit {self.ceiling.name}={self.ceiling.value:g} ({self.key}) would be crossed: "
            f"{self.spent:g}{unit} spent and {self.reserved:g} reserved in the last {self.window}, "
            f"{self.requested:g} more requested"
        )

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """What one key's window holds now: settled spend and live reservations."""

    key: str
    window: Window
    spent_usd: float
    spent_tokens: int
    reserved_usd: float
    reserved_tokens: int


def entry_id_for(run_id: str, seq: int) -> str:
    """The ledger entry id of the reservation a run journals as its event `seq` (``budget_reserved``).

    Derived, not random, so that a reservation whose process died after the ledger committed it but before the
    journal recorded it can still be found and given back when the run is resumed: nothing was called under it.
    """
    return f"spend-{run_id}-{seq}"


class SpendLedger:
    """Reservations and settled spend in a `Store`, checked against `SpendLimit`s.

    Args:
        store: where the ledger lives; share one store file (or server) between processes to share limits.
        clock: seconds since the epoch; tests pass a fake one. Processes sharing a store must share a clock
            (one machine, or synchronized machines).
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def reserve(
        self,
        run_id: str,
        limits: Iterable[tuple[SpendLimit, str]],
        usd: float,
        tokens: int,
        *,
        ttl_s: float,
        entry_id: str | None = None,
    ) -> Reservation | Refusal:
        """Reserve `usd` and `tokens` (the worst case of what is about to be spent) under every limit's key.

        Args:
            run_id: the run that will spend, recorded with the reservation.
            limits: the applicable limits, each with its ledger key (see `applicable_limits`).
            usd: the most the call can cost.
            tokens: the most tokens it can use.
            ttl_s: how long the reservation holds if it is never settled or released.
            entry_id: the reservation's id (see `entry_id_for`); a fresh random one when None.

        Returns:
            A `Reservation` to settle or release, or a `Refusal` naming the first limit that would be crossed
            (limits in the order given; hour before day, money before tokens).
        """
        _check_amounts(usd, tokens)
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not math.isfinite(ttl_s) or ttl_s <= 0:
            raise ConfigError(f"a reservation's ttl_s must be a finite number of seconds above zero, got {ttl_s!r}")
        pairs = list(limits)
        now = self._clock()
        reservation = Reservation(
            entry_id=entry_id or f"spend-{secrets.token_hex(8)}",
            run_id=run_id,
            keys=tuple(dict.fromkeys(key for _, key in pairs)),
            ts=now,
            usd=usd,
            tokens=tokens,
            expires_at=now + ttl_s,
        )
        if not pairs:
            return reservation
        checks: list[SpendCheck] = []
        sources: list[tuple[SpendLimit, Ceiling]] = []
        for limit, key in pairs:
            for ceiling in limit.ceilings():
                amount = _nano(ceiling.value) if ceiling.unit == "usd" else int(ceiling.value)
                checks.append(SpendCheck(key, now - WINDOW_SECONDS[ceiling.window], ceiling.unit, amount))
                sources.append((limit, ceiling))
        blocked = await self.store.reserve_spend(
            _entry(reservation, usd, tokens, reservation.expires_at),
            checks,
            purge_before=now - max(WINDOW_SECONDS.values()),
        )
        if blocked is None:
            return reservation
        limit, ceiling = sources[checks.index(blocked.check)]
        unit = ceiling.unit
        return Refusal(
            limit=limit,
            ceiling=ceiling,
            key=blocked.check.key,
            spent=_amount(blocked.totals.settled(unit), unit),
            reserved=_amount(blocked.totals.reserved(unit), unit),
            requested=usd if unit == "usd" else tokens,
        )

    async def settle(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Replace the reservation by what was actually spent; it keeps counting in its windows.

        Settling more than was reserved is recorded as it is (the provider's bill is the truth) and can take a
        window past its ceiling; later reservations are then refused until the window has room again.
        """
        _check_amounts(usd, tokens)
        if reservation.keys:
            await self.store.settle_spend(_entry(reservation, usd, tokens, None))

    async def release(self, reservation: Reservation) -> None:
        """Give the reservation back: nothing was spent (the call failed before it reached the provider)."""
        if reservation.keys:
            await self.store.release_spend(reservation.entry_id)

    async def release_entry(self, entry_id: str) -> None:
        """Give back the live reservation `entry_id`, if there is one (for a hold whose process died unjournaled)."""
        await self.store.release_spend(entry_id)

    async def totals(self, key: str, window: Window) -> WindowTotals:
        """Settled spend and live reservations under `key` in the rolling `window`, as of now."""
        now = self._clock()
        found: SpendTotals = await self.store.spend_totals(key, now - WINDOW_SECONDS[window], now=now)
        return WindowTotals(
            key=key,
            window=window,
            spent_usd=found.settled_nano_usd / _NANO,
            spent_tokens=found.settled_tokens,
            reserved_usd=found.reserved_nano_usd / _NANO,
            reserved_tokens=found.reserved_tokens,
        )


def _check_amounts(usd: float, tokens: int) -> None:
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd) or usd < 0:
        raise ConfigError(f"a spend in USD must be a finite number, zero or more, got {usd!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ConfigError(f"a spend in tokens must be a whole number, zero or more, got {tokens!r}")


def _nano(usd: float) -> int:
    return round(usd * _NANO)


def _amount(value: int, unit: Unit) -> float:
    return value / _NANO if unit == "usd" else value


def _entry(reservation: Reservation, usd: float, tokens: int, expires_at: float | None) -> SpendEntry:
    return SpendEntry(
        entry_id=reservation.entry_id,
        run_id=reservation.run_id,
        keys=reservation.keys,
        ts=reservation.ts,
        nano_usd=_nano(usd),
        tokens=tokens,
        expires_at=expires_at,
    )
