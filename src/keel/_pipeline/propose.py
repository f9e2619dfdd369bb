"""Propose: ask the model for the next action, within the run's step, time and spending bounds."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from keel._pipeline.authorize import Allowed, authorize_model_call
from keel._pipeline.cache import cached_response, remember_response
from keel._pipeline.clean import clean_response, clean_text
from keel._pipeline.escalate import hold_spend_past
from keel._pipeline.failure import describe, malformed, stops_the_program
from keel._pipeline.record import record
from keel._pipeline.spend import DEFAULT_CALL_S, Hold, hold_spend
from keel._pipeline.state import Finish, RunState
from keel._pipeline.tiers import current_tier, tier_fields
from keel.errors import KeelError, ModelError
from keel.journal import EventKind, Phase
from keel.models.base import AssistantMessage, Message, ModelRequest, ModelResponse, RequestUsage, ToolSpec
from keel.recovery.retry import NO_RETRY, attempts
from keel.result import RunStatus

__all__ = ["FinalTurn", "propose", "request_for"]


@dataclass(frozen=True, slots=True)
class FinalTurn:
    """The best-effort answer's call (E5, C3): its own messages, no tools, and the budget's reserved slice."""

    messages: tuple[Message, ...]


def request_for(state: RunState, max_output_tokens: int, final: FinalTurn | None = None) -> ModelRequest:
    """The request of the next turn (or of the best-effort answer) with this output allowance."""
    spec = state.spec
    return ModelRequest(
        instructions=spec.instructions,
        messages=final.messages if final is not None else tuple(state.messages),
        tools=() if final is not None else _offered(state),
        output_schema=spec.output_schema,
        max_output_tokens=max_output_tokens,
    )


def _offered(state: RunState) -> tuple[ToolSpec, ...]:
    """The tools the model may call: the allow-list, less the tools given up on in this run."""
    specs = state.spec.registry.specs
    return specs if not state.unavailable else tuple(s for s in specs if s.name not in state.unavailable)


def _check_bounds(state: RunState, final: FinalTurn | None) -> Finish | None:
    budget = state.spec.budget
    if final is None and state.steps >= budget.max_steps:
        return Finish(RunStatus.PARTIAL, f"step budget exhausted (max_steps={budget.max_steps})", salvage=True)
    remaining = state.remaining_s() if final is not None else state.time_for_work()  # the answer's time is kept
    if remaining is not None and remaining <= 0:
        return Finish(RunStatus.PARTIAL, f"wall-time budget exhausted (timeout_s={budget.timeout_s})", salvage=True)
    return None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """A model call that failed in a way another attempt, or another model, might not."""

    finish: Finish
    """How the run ends if nothing else is tried."""
    retryable: bool
    """The provider says the failure is transient (429, 5xx, timeout, connection, malformed response)."""
    retry_after_s: float | None = None
    """How long the provider asked us to wait, when it did."""


async def propose(state: RunState, final: FinalTurn | None = None) -> ModelResponse | Finish:
    """Call the model once — retrying transient failures, then trying fallback models — or say why the run stops.

    Every attempt is journaled (`model_called`, with its error), every wait (`retry_scheduled`) and every switch
    to a fallback model (`fallback_used`); a fallback model serves the rest of the run.
    """
    tried = 0
    # The best-effort answer is one call past the run's bounds: never retried, never handed down the chain.
    policy = NO_RETRY if final is not None else state.spec.retry
    max_steps = state.spec.budget.max_steps
    while True:  # bounded: each pass moves one model down the fallback chain
        outcome = await attempts(
            policy,
            lambda attempt: _attempt(state, attempt, final),
            should_retry=lambda result: isinstance(result, CallFailed) and result.retryable,
            before_wait=lambda result, attempt, delay_s: _retry_scheduled(state, result, attempt, delay_s),
            wait_at_least=lambda result: (result.retry_after_s or 0.0) if isinstance(result, CallFailed) else 0.0,
            time_left=state.remaining_s if final is not None else state.time_for_work,
            may_go_on=lambda: state.steps < max_steps,
        )
        if not isinstance(outcome, CallFailed):
            return outcome
        fallbacks = state.spec.fallback_models if final is None else ()
        current = state.current_model
        index = next((i for i, m in enumerate(fallbacks) if m is current), -1) + 1
        if index >= len(fallbacks) or tried >= len(fallbacks) or state.steps >= max_steps:
            return outcome.finish
        tried += 1
        await record(
            state,
            EventKind.FALLBACK_USED,
            {"from": current.name, "to": fallbacks[index].name, "reason": outcome.finish.reason, "model": True},
            phase=Phase.RECOVERY,
        )
        state.model = fallbacks[index]


async def _retry_scheduled(
    state: RunState, failed: ModelResponse | Finish | CallFailed, attempt: int, delay: float
) -> None:
    reason = failed.finish.reason if isinstance(failed, CallFailed) else ""
    payload = {"model": state.current_model.name, "attempt": attempt, "delay_s": round(delay, 3), "error": reason}
    await record(state, EventKind.RETRY_SCHEDULED, payload, phase=Phase.RECOVERY)
    state.phase = Phase.RECOVERY  # a retried call's tokens are recovery's, not the task's (O3)


async def _attempt(state: RunState, attempt: int, final: FinalTurn | None) -> ModelResponse | Finish | CallFailed:
    """One authorized model call: bounds, budget, spend review and the ledger first, then the call."""
    if (stop := _check_bounds(state, final)) is not None:
        return stop
    spec = state.spec
    request = request_for(state, spec.max_output_tokens, final)
    if final is None and (hit := await cached_response(state, request)) is not None:
        state.steps += 1  # a turn, answered from the cache: nothing to authorize, nothing spent
        allowance = RequestUsage(0, request.max_output_tokens)
        return await _record_response(state, hit.response, allowance, 0.0, None, attempt, cached=hit.key)
    input_tokens = state.current_model.count_input_tokens(request)
    verdict = authorize_model_call(state, input_tokens, reserve=final is None)
    if not isinstance(verdict, Allowed):
        await record(
            state,
            EventKind.BUDGET_REFUSED,
            {"limit": verdict.limit, "needed": verdict.needed, "remaining": verdict.remaining},
        )
        reason = f"budget exhausted: the next model call would exceed {verdict.limit}"
        return Finish(RunStatus.PARTIAL, reason, salvage=True)
    if verdict.max_output_tokens != request.max_output_tokens:
        request = request_for(state, verdict.max_output_tokens, final)
    reserved = RequestUsage(input_tokens, verdict.max_output_tokens)
    worst_usd = _worst_usd(state, reserved)
    if (review_at := _spend_review_at(state)) is not None and state.usage.cost_usd + worst_usd > review_at:
        if final is not None:  # the run is ending anyway: no pause for a last answer past the review threshold
            return Finish(RunStatus.PARTIAL, "a best-effort answer would pass the spend review threshold")
        return await hold_spend_past(state, state.usage.cost_usd, worst_usd, review_at)
    held = await hold_spend(state, worst_usd, reserved.total_tokens)
    if isinstance(held, Finish):
        return held
    try:
        return await _call(state, request, reserved, held, attempt, final is not None)
    finally:
        if held is not None:
            # Still open: the call was cancelled or crashed after the request may have gone out. What it
            # cost is unknown, so under a hard limit it counts as its worst case.
            await held.settle(worst_usd, reserved.total_tokens)


async def _call(
    state: RunState, request: ModelRequest, reserved: RequestUsage, held: Hold | None, attempt: int, final: bool
) -> ModelResponse | Finish | CallFailed:
    """Make the authorized call, then account it: journal, run usage, and the spend ledger when limits apply."""
    spec = state.spec
    state.steps += 1
    started = time.perf_counter()
    remaining = state.remaining_s() if final else state.time_for_work()
    deadline = asyncio.timeout(remaining if remaining is not None else DEFAULT_CALL_S)
    try:
        async with deadline:
            response = await state.current_model.request(request)
    except TimeoutError as exc:
        # Sent and unanswered: the provider may bill it, so it counts as its worst case — in the run's usage (and
        # budget) as in the spending limits' ledger.
        latency_ms = (time.perf_counter() - started) * 1000
        failed = Failure(reserved, latency_ms, held, attempt, worst_case=True)
        if deadline.expired() and remaining is not None:  # the run's budget ran out: a bounded stop
            error = f"wall-time budget exhausted during the model call (timeout_s={spec.budget.timeout_s})"
            return (await _failed_call(state, error, failed, status=RunStatus.PARTIAL)).finish
        if deadline.expired():
            error = f"model call timed out after {DEFAULT_CALL_S:g}s (the run has no wall-time budget)"
            return await _failed_call(state, error, failed, retryable=True)
        error = f"model call timed out: {str(exc) or 'no detail'}"
        return await _failed_call(state, error, failed, retryable=True)
    except ModelError as exc:
        failed = Failure(reserved, (time.perf_counter() - started) * 1000, held, attempt)
        error = clean_text(f"model call failed: {exc}")
        return await _failed_call(
            state, error, failed, consumed=exc.tokens, retryable=exc.retryable, retry_after_s=exc.retry_after_s
        )
    except KeelError:
        raise  # configuration (model requests disabled, credentials missing): for the developer, not a status
    except BaseException as exc:  # a bug in a model adapter is a failed call: the fallback models take over
        if stops_the_program(exc):
            raise
        failed = Failure(reserved, (time.perf_counter() - started) * 1000, held, attempt, worst_case=True)
        return await _failed_call(state, clean_text(f"model adapter failed: {describe(exc)}"), failed)
    latency_ms = (time.perf_counter() - started) * 1000
    if (problem := malformed(response)) is not None:
        failed = Failure(reserved, latency_ms, held, attempt, worst_case=True)
        return await _failed_call(state, f"model adapter returned {problem}", failed)
    response = clean_response(response)
    recorded = await _record_response(state, response, reserved, latency_ms, held, attempt)
    if not final:  # a best-effort answer is never looked up
        await remember_response(state, request, response)
    return recorded


def _with_unique_call_ids(state: RunState, response: ModelResponse) -> ModelResponse:
    """`response` with each tool-call id new to the run.

    Providers' ids are not guaranteed unique (some OpenAI-compatible servers send none, or the same one every
    turn), and a held call is approved by its id.
    """
    renamed = []
    for index, call in enumerate(response.tool_calls):
        if not call.id or call.id in state.call_ids:
            fresh, n = f"{call.id or 'call'}~{state.steps}.{index}", 0
            while fresh in state.call_ids:  # bounded: the set is finite
                n += 1
                fresh = f"{call.id or 'call'}~{state.steps}.{index}.{n}"
            call = dataclasses.replace(call, id=fresh)
        state.call_ids.add(call.id)
        renamed.append(call)
    if all(a is b for a, b in zip(renamed, response.tool_calls, strict=True)):
        return response
    return dataclasses.replace(response, tool_calls=tuple(renamed))


def _spend_review_at(state: RunState) -> float | None:
    """The spend past which a person must approve the next call (`Escalation.max_cost_usd`), or None."""
    if state.spend_review_at_usd is not None:
        return state.spend_review_at_usd
    return state.spec.escalation.max_cost_usd


def _worst_usd(state: RunState, reserved: RequestUsage) -> float:
    price = state.current_model.price
    return price.cost(reserved.input_tokens, reserved.output_tokens) if price is not None else 0.0


def _charged_usage(response: ModelResponse, reserved: RequestUsage) -> tuple[RequestUsage, dict[str, Any]]:
    """The usage to account, and notes for the journal when it differs from what the provider said."""
    usage = response.usage
    if (doubt := _implausible(usage)) is not None:
        # Negative, fractional or absurd figures: charging them could credit money back or overflow the ledger.
        # The reservation is what the call was allowed to cost: charge that, and say what was reported.
        return reserved, {"usage_estimated": True, "usage_distrusted": doubt}
    if usage.total_tokens == 0:
        # No usage reported (some OpenAI-compatible servers omit it): charge the worst case we reserved,
        # so the budget still goes down and is never crossed unseen.
        return reserved, {"usage_estimated": True}
    notes: dict[str, Any] = {}
    if usage.input_tokens > reserved.input_tokens or usage.output_tokens > reserved.output_tokens:
        notes["overrun"] = {"reserved": [reserved.input_tokens, reserved.output_tokens]}
    return usage, notes


MAX_REPORTED_TOKENS = 100_000_000
"""More tokens than any model's context and output in one call: a report beyond it is not believed."""


def _implausible(usage: Any) -> str | None:
    """Why the usage a provider reported cannot be charged as is, or None when it can."""
    if not isinstance(usage, RequestUsage):
        return f"usage of type {type(usage).__name__}, not RequestUsage"
    for name in ("input_tokens", "output_tokens"):
        value = getattr(usage, name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name}={value!r:.40}: not a whole number"
        if not 0 <= value <= MAX_REPORTED_TOKENS:
            return f"{name}={value}: outside 0..{MAX_REPORTED_TOKENS:,}"
    return None


async def _record_response(
    state: RunState,
    response: ModelResponse,
    reserved: RequestUsage,
    latency_ms: float,
    held: Hold | None,
    attempt: int,
    *,
    cached: str | None = None,
) -> ModelResponse:
    spec = state.spec
    state.last_output_allowance = reserved.output_tokens
    response = _with_unique_call_ids(state, response)
    if cached is not None:  # the cache answered: the journal keeps the turn, the money was not spent
        usage, notes = RequestUsage(), {"cached": True, "cache_key": cached}
    else:
        usage, notes = _charged_usage(response, reserved)
    price = state.current_model.price
    cost = price.cost(usage.input_tokens, usage.output_tokens) if price is not None else 0.0
    state.usage.add_request(state.phase, usage.input_tokens, usage.output_tokens, cost)
    payload: dict[str, Any] = {
        "model": state.current_model.name,
        "step": state.steps,
        "text": response.text,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
        "finish_reason": response.finish_reason,
        "provider_id": response.provider_id,
        "reason": response.reason,
        "confidence": response.confidence,
        "alternatives": list(spec.registry.names),
        "informed_by": state.informed_by,
        "reserved_tokens": reserved.total_tokens,
        "attempt": attempt,
        **notes,
        **tier_fields(state, current_tier(state)),
    }
    if response.notes:
        payload["provider_notes"] = list(response.notes)
    if price is None:
        payload["price_unknown"] = True
    event = await record(
        state,
        EventKind.MODEL_CALLED,
        payload,
        tokens_in=usage.input_tokens,
        tokens_out=usage.output_tokens,
        cost_usd=cost,
        latency_ms=latency_ms,
    )
    if held is not None:  # after the journal: a process dying in between leaves the cost for resume to settle
        await held.settle(cost, usage.total_tokens)
    state.informed_by = [event.seq]
    state.messages.append(AssistantMessage(response.text, response.tool_calls))
    if response.text:
        state.last_text = response.text
    return response


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed call's accounting needs: its reservation, its time, its ledger hold and its attempt."""

    reserved: RequestUsage
    latency_ms: float
    held: Hold | None
    attempt: int
    worst_case: bool = False
    """Charge the reserved worst case (a call sent and never answered: it may be billed in full)."""


async def _failed_call(
    state: RunState,
    error: str,
    failed: Failure,
    *,
    status: RunStatus | None = None,
    consumed: tuple[int, int] | None = None,
    retryable: bool = False,
    retry_after_s: float | None = None,
) -> CallFailed:
    # The attempt counts as a request. Tokens it consumed are charged when the provider knows them (a local
    # model stopped mid-reply); an HTTP failure reports none, and whether the provider bills it is unknown here.
    if failed.worst_case:
        consumed = (failed.reserved.input_tokens, failed.reserved.output_tokens)
    tokens_in, tokens_out = consumed or (0, 0)
    model = state.current_model
    cost = model.price.cost(tokens_in, tokens_out) if model.price is not None else 0.0
    state.usage.add_request(state.phase, tokens_in, tokens_out, cost)
    payload: dict[str, Any] = {
        "model": model.name,
        "step": state.steps,
        "error": error,
        "reserved_tokens": failed.reserved.total_tokens,
        "attempt": failed.attempt,
        "retryable": retryable,
        **tier_fields(state, current_tier(state)),
    }
    if retry_after_s is not None:
        payload["retry_after_s"] = retry_after_s
    if failed.worst_case:
        payload["usage_estimated"] = True
    await record(
        state,
        EventKind.MODEL_CALLED,
        payload,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost,
        latency_ms=failed.latency_ms,
    )
    if failed.held is not None:  # after the journal, as for an answered call
        await (failed.held.settle(cost, tokens_in + tokens_out) if consumed else failed.held.release())
    if status is None:
        has_value = state.last_text is not None or bool(state.tool_results)
        status = RunStatus.PARTIAL if has_value else RunStatus.FAILED
    return CallFailed(Finish(status, error), retryable, retry_after_s)
