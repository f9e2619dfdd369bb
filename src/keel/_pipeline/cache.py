"""Caching in the pipeline (C2): a model response or a tool result reused instead of a call, journaled as a hit.

Every hit is a `cache_hit` event with the tokens and money it saved. A cached model response is still journaled as
the turn's `model_called` (``cached: true``, no tokens, no cost), so traces and resume read it like any turn; a
cached tool result stands instead of the tool's `tool_called`. A backend that fails (`CacheError`) is given up on
for the rest of the run: one `fallback_used` event (``cache: true``) says so, and the run goes on uncached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keel._pipeline.execute import ToolOutcome
from keel._pipeline.failure import describe
from keel._pipeline.record import record
from keel._pipeline.state import RunState
from keel._pipeline.validate import ValidCall
from keel.cost._cache_keys import cache_key
from keel.cost.cache import CacheBackend
from keel.errors import CacheError
from keel.journal import EventKind
from keel.models.base import ModelRequest, ModelResponse, RequestUsage, ToolCall

__all__ = ["CachedResponse", "cached_response", "cached_tool_result", "remember_response", "remember_tool_result"]

_REUSABLE = ("stop", "tool_calls")  # a cut-off or filtered answer is not worth repeating


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A response found in the cache, and its key (journaled with the turn)."""

    key: str
    response: ModelResponse


def _backend(state: RunState) -> CacheBackend | None:
    return None if state.cache_down else state.spec.cache


def _response_key(state: RunState, request: ModelRequest) -> str | None:
    policy, model = state.spec.cache_policy, state.current_model
    if _backend(state) is None or policy is None or policy.responses is False:
        return None
    if policy.responses == "deterministic" and not model.deterministic:
        return None
    return cache_key("model", type(model).__qualname__, model.name, request)


async def cached_response(state: RunState, request: ModelRequest) -> CachedResponse | None:
    """The cached response to `request`, its hit journaled; None on a miss (or when responses are not cached)."""
    key = _response_key(state, request)
    raw = None if key is None else await _get(state, key)
    response = None if raw is None else _decode(raw)
    if key is None or response is None:
        return None
    usage, price = response.usage, state.current_model.price
    saved_usd = price.cost(usage.input_tokens, usage.output_tokens) if price is not None else 0.0
    payload = {"key": key, "kind": "model", "model": state.current_model.name, "saved_tokens": usage.total_tokens,
               "saved_cost_usd": saved_usd}  # fmt: skip
    await record(state, EventKind.CACHE_HIT, payload)
    return CachedResponse(key, response)


async def remember_response(state: RunState, request: ModelRequest, response: ModelResponse) -> None:
    """Keep a complete response for the same request later (when responses are cached for this model)."""
    key = _response_key(state, request)
    policy = state.spec.cache_policy
    if key is not None and policy is not None and response.finish_reason in _REUSABLE:
        await _set(state, key, _encode(response), policy.response_ttl_s)


def _tool_key(state: RunState, valid: ValidCall) -> str | None:
    tool, policy = valid.tool, state.spec.cache_policy
    if _backend(state) is None or policy is None or not policy.tools or tool.cache_ttl is None:
        return None
    if tool.side_effects and not tool.idempotent:
        return None
    # The agent and the tool's identity are in the key: another agent's tool of the same name is another tool.
    function = f"{getattr(tool.function, '__module__', '')}.{getattr(tool.function, '__qualname__', '')}"
    return cache_key("tool", state.spec.agent, tool.name, function, tool.parameters, valid.args.model_dump(mode="json"))


async def cached_tool_result(state: RunState, valid: ValidCall) -> ToolOutcome | None:
    """The cached result of this call, its hit journaled (it stands for the tool's `tool_called`); None on a miss."""
    key = _tool_key(state, valid)
    raw = None if key is None else await _get(state, key)
    if key is None or raw is None:
        return None
    arguments = valid.args.model_dump(mode="json")
    payload = {"key": key, "kind": "tool", "tool": valid.tool.name, "call_id": valid.call.id, "arguments": arguments,
               "result": raw, "saved_tokens": 0, "saved_cost_usd": valid.tool.cost_usd}  # fmt: skip
    await record(state, EventKind.CACHE_HIT, payload)
    state.usage.tool_calls += 1
    if not valid.tool.trusted and state.tainted_by is None:  # the taint rule (G5) holds for cached output too
        state.tainted_by = f"output of {valid.tool.name}"
    return ToolOutcome(valid, "ok", raw, 0.0, "")


async def remember_tool_result(state: RunState, valid: ValidCall, result: ToolOutcome) -> None:
    """Keep a successful result for the tool's `cache_ttl`."""
    key = _tool_key(state, valid)
    if key is not None and result.ok:
        await _set(state, key, result.content, valid.tool.cache_ttl)


async def _get(state: RunState, key: str) -> str | None:
    backend = _backend(state)
    if backend is None:
        return None
    try:
        return await backend.get(key)
    except Exception as exc:  # a CacheError, or a custom backend's own: either way the run goes on uncached
        await _give_up(state, backend, exc)
        return None


async def _set(state: RunState, key: str, value: str, ttl_s: float | None) -> None:
    backend = _backend(state)
    if backend is None:
        return
    try:
        await backend.set(key, value, ttl_s=ttl_s)
    except Exception as exc:  # a CacheError, or a custom backend's own: either way the run goes on uncached
        await _give_up(state, backend, exc)


async def _give_up(state: RunState, backend: CacheBackend, exc: Exception) -> None:
    """A cache that fails is not used again in this run: journaled once, never a failed run."""
    state.cache_down = True
    reason = str(exc) if isinstance(exc, CacheError) else describe(exc)
    payload = {"from": f"cache {backend.name}", "to": None, "reason": reason, "cache": True, "degraded": True}
    await record(state, EventKind.FALLBACK_USED, payload)


def _encode(response: ModelResponse) -> str:
    return json.dumps(
        {
            "text": response.text,
            "tool_calls": [[c.id, c.name, c.arguments] for c in response.tool_calls],
            "usage": [response.usage.input_tokens, response.usage.output_tokens],
            "finish_reason": response.finish_reason,
            "model_name": response.model_name,
            "reason": response.reason,
            "confidence": response.confidence,
        },
        ensure_ascii=False,
    )


def _decode(raw: str) -> ModelResponse | None:
    """A cached response, or None for an entry this version cannot read (a miss, never a failure)."""
    try:
        data: dict[str, Any] = json.loads(raw)
        return ModelResponse(
            text=data["text"],
            tool_calls=tuple(ToolCall(str(i), str(n), str(a)) for i, n, a in data["tool_calls"]),
            usage=RequestUsage(int(data["usage"][0]), int(data["usage"][1])),
            finish_reason=data["finish_reason"],
            model_name=str(data.get("model_name") or ""),
            reason=data.get("reason"),
            confidence=data.get("confidence"),
        )
    except (ValueError, KeyError, TypeError):
        return None
