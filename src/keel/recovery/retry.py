"""`RetryPolicy`: how often, and how patiently, a failed tool or model call is tried again (E1).

The policy is data; the attempts are driven by `tenacity` (exponential backoff with jitter, stop after N
attempts or a total time), wrapped by `attempts()` so that every loop also stops when the *run* has no time
left for the next wait. Each retry is journaled by the caller (`retry_scheduled`) before its wait.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from keel.errors import ConfigError

__all__ = ["NO_RETRY", "RetryPolicy", "attempts"]

T = TypeVar("T")

_ABSURD_ATTEMPTS = 100
"""More attempts than this is a mistake, not a policy: a dead dependency would be hammered for minutes."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    The n-th retry waits ``min(initial_delay_s * multiplier ** (n - 1), max_delay_s)`` plus up to `jitter`
    seconds at random (so many clients failing together do not retry together). A provider's ``retry-after``
    replaces the computed wait when longer. Retries stop after `max_attempts` attempts in all, after
    `total_timeout_s` seconds since the first attempt, and when the run's own wall time cannot cover the wait.

    Example:
        ``RetryPolicy(max_attempts=3, initial_delay_s=0.5, max_delay_s=8)``: at most 3 attempts, waiting about
        0.5 s, then 1 s.
    """

    max_attempts: int = 3
    """Attempts in all, the first included (1 means no retry)."""
    initial_delay_s: float = 0.5
    """The wait before the first retry."""
    max_delay_s: float = 8.0
    """No single wait is longer: a provider's ``retry-after`` beyond it (or beyond what the run has left) ends the
    retries instead — the fallback model, if any, takes over."""
    multiplier: float = 2.0
    """Each wait is this many times the previous one."""
    jitter: float = 0.25
    """Up to this many seconds are added to each wait at random."""
    retry_on: tuple[type[BaseException], ...] = (OSError,)
    """For tools: the exception types worth another attempt. The default, `OSError`, covers timeouts
    (`TimeoutError`, also a tool's own timeout), refused and reset connections (`ConnectionError`) and other I/O
    failures; a `ValueError` for a bad id goes back to the model instead, which can correct its call. Model
    calls are retried when the provider says the failure is transient (`ModelError.retryable`)."""
    total_timeout_s: float | None = None
    """No retry starts later than this many seconds after the first attempt; None: only the run's time bounds it."""

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigError(f"RetryPolicy.max_attempts must be a whole number, got {self.max_attempts!r}")
        if not 1 <= self.max_attempts <= _ABSURD_ATTEMPTS:
            raise ConfigError(
                f"RetryPolicy.max_attempts must be between 1 and {_ABSURD_ATTEMPTS}, got {self.max_attempts}"
            )
        for name in ("initial_delay_s", "max_delay_s", "jitter"):
            _check_number(name, getattr(self, name), may_be_zero=True)
        _check_number("multiplier", self.multiplier, may_be_zero=False)
        if self.multiplier < 1:
            raise ConfigError(f"RetryPolicy.multiplier must be at least 1, got {self.multiplier}")
        if self.max_delay_s < self.initial_delay_s:
            raise ConfigError(
                f"RetryPolicy.max_delay_s ({self.max_delay_s}) must not be below "
                f"initial_delay_s ({self.initial_delay_s})"
            )
        if self.total_timeout_s is not None:
            _check_number("total_timeout_s", self.total_timeout_s, may_be_zero=False)
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.retry_on
        ):
            raise ConfigError(f"RetryPolicy.retry_on must be a tuple of exception types, got {self.retry_on!r}")

    def retries(self, error: BaseException) -> bool:
        """True when `error` is of a type this policy retries."""
        return isinstance(error, self.retry_on)


def _check_number(name: str, value: Any, *, may_be_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"RetryPolicy.{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not may_be_zero):
        raise ConfigError(f"RetryPolicy.{name} must be {'>= 0' if may_be_zero else '> 0'}, got {value!r}")


NO_RETRY = RetryPolicy(max_attempts=1, initial_delay_s=0, max_delay_s=0, jitter=0)
"""One attempt: for side-effecting tools that declare neither `retry=` nor ``idempotent=True``."""


class _CannotGoOn(tenacity.stop.stop_base):
    """Stop when the run cannot afford the next wait or the next attempt, or the wait is past the policy's."""

    def __init__(self, policy: RetryPolicy, time_left: Callable[[], float | None], may_go_on: Callable[[], bool]):
        self.longest = policy.max_delay_s + policy.jitter
        self.time_left, self.may_go_on = time_left, may_go_on

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        left = self.time_left()
        too_long = state.upcoming_sleep > self.longest  # a retry-after beyond the policy: hand over instead
        return (left is not None and state.upcoming_sleep >= left) or too_long or not self.may_go_on()


def _stop(policy: RetryPolicy, time_left: Callable[[], float | None], may_go_on: Callable[[], bool]) -> Any:
    """When the retries end: attempts spent, total time spent, or `_CannotGoOn`."""
    stop = tenacity.stop_after_attempt(policy.max_attempts) | _CannotGoOn(policy, time_left, may_go_on)
    if policy.total_timeout_s is not None:
        stop = stop | tenacity.stop_before_delay(policy.total_timeout_s)
    return stop


async def attempts(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    *,
    should_retry: Callable[[T], bool],
    before_wait: Callable[[T, int, float], Awaitable[None]],
    wait_at_least: Callable[[T], float] = lambda _: 0.0,
    time_left: Callable[[], float | None] = lambda: None,
    may_go_on: Callable[[], bool] = lambda: True,
) -> T:
    """Call ``attempt(n)`` for n = 1, 2, … until `should_retry` is False or the policy is spent; the last result.

    Args:
        policy: the bounds and the backoff.
        attempt: one try; it never raises for a failure worth retrying, it returns it.
        should_retry: whether a result is a failure worth another attempt.
        before_wait: called with the failed result, the next attempt's number and the wait, before waiting
            (the caller journals `retry_scheduled` here).
        wait_at_least: a floor for the wait, from the result (a provider's ``retry-after``).
        time_left: seconds the run has left, or None; a wait that does not fit ends the retries.
        may_go_on: False when another attempt would be refused anyway (the run's step budget is spent): the
            retries end without announcing one that cannot happen.
    """
    backoff = tenacity.wait_exponential_jitter(
        multiplier=policy.initial_delay_s, max=policy.max_delay_s, exp_base=policy.multiplier, jitter=policy.jitter
    )

    def wait(state: tenacity.RetryCallState) -> float:
        floor = wait_at_least(state.outcome.result()) if state.outcome is not None else 0.0
        return max(float(backoff(state)), floor)

    stop = _stop(policy, time_left, may_go_on)

    async def announce(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        await before_wait(state.outcome.result(), state.attempt_number + 1, state.upcoming_sleep)

    counter = 0

    async def numbered() -> T:
        nonlocal counter
        counter += 1
        return await attempt(counter)

    retrying = tenacity.AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_result(should_retry),
        before_sleep=announce,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
    )
    result: T = await retrying(numbered)
    return result
