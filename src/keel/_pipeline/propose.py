"""Propose: ask the model for the next action, within the run's step, time and spending bounds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from keel._pipeline.authorize import Allowed, authorize_model_call
from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.errors import ModelError
from keel.journal import EventKind
from keel.models.base import AssistantMessage, ModelRequest, ModelResponse
from keel.result import RunStatus

__all__ = ["propose"]


def _request(state: RunState, max_output_tokens: int) -> ModelRequest:
    spec = state.spec
    schema = spec.output_adapter.json_schema() if spec.output_adapter is not None else None
    return ModelRequest(
        instructions=spec.instructions,
        messages=tuple(state.messages),
        tools=spec.registry.specs,
        output_schema=schema,
        max_output_tokens=max_output_tokens,
    )


def _check_bounds(state: RunState) -> Finish | None:
    budget = state.spec.budget
    if state.steps >= budget.max_steps:
        return Finish(RunStatus.PARTIAL, f"step budget exhausted (max_steps={budget.max_steps})")
    remaining = state.remaining_s()
    if remaining is not None and remaining <= 0:
        return Finish(RunStatus.PARTIAL, f"wall-time budget exhausted (timeout_s={budget.timeout_s})")
    return None


async def propose(state: RunState) -> ModelResponse | Finish:
    """Call the model once, or say why the run must stop instead."""
    if (stop := _check_bounds(state)) is not None:
        return stop
    spec = state.spec
    request = _request(state, spec.max_output_tokens)
    input_tokens = spec.model.count_input_tokens(request)
    verdict = authorize_model_call(state, input_tokens)
    if not isinstance(verdict, Allowed):
        await record(
            state,
            EventKind.BUDGET_REFUSED,
            {"limit": verdict.limit, "needed": verdict.needed, "remaining": verdict.remaining},
        )
        return Finish(RunStatus.PARTIAL, f"budget exhausted: the next model call would exceed {verdict.limit}")
    if verdict.max_output_tokens != request.max_output_tokens:
        request = _request(state, verdict.max_output_tokens)
    state.steps += 1
    started = time.perf_counter()
    try:
        async with asyncio.timeout(state.remaining_s()):
            response = await spec.model.request(request)
    except (ModelError, TimeoutError) as exc:
        return await _failed_call(state, exc, (time.perf_counter() - started) * 1000)
    await _record_response(state, response, (time.perf_counter() - started) * 1000)
    return response


async def _record_response(state: RunState, response: ModelResponse, latency_ms: float) -> None:
    spec = state.spec
    usage = response.usage
    price = spec.model.price
    cost = price.cost(usage.input_tokens, usage.output_tokens) if price is not None else 0.0
    state.usage.add_request(state.phase, usage.input_tokens, usage.output_tokens, cost)
    payload: dict[str, Any] = {
        "model": spec.model.name,
        "step": state.steps,
        "text": response.text,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
        "finish_reason": response.finish_reason,
        "provider_id": response.provider_id,
        "reason": response.reason,
        "confidence": response.confidence,
        "alternatives": list(spec.registry.names),
        "informed_by": state.informed_by,
    }
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
    state.informed_by = [event.seq]
    state.messages.append(AssistantMessage(response.text, response.tool_calls))
    if response.text:
        state.last_text = response.text


async def _failed_call(state: RunState, exc: ModelError | TimeoutError, latency_ms: float) -> Finish:
    if isinstance(exc, TimeoutError):
        error = f"wall-time budget exhausted during the model call (timeout_s={state.spec.budget.timeout_s})"
    else:
        error = f"model call failed: {exc}"
    await record(
        state,
        EventKind.MODEL_CALLED,
        {"model": state.spec.model.name, "step": state.steps, "error": error},
        latency_ms=latency_ms,
    )
    has_value = state.last_text is not None or bool(state.tool_results)
    return Finish(RunStatus.PARTIAL if has_value else RunStatus.FAILED, error)
