"""Execute: run one validated tool call within its timeout, catching everything it throws.

A tool's failure is the model's problem to work around, not the caller's exception: errors, timeouts and
results that cannot be serialized all come back as a tool error message, and are journaled.

Sync tools run on Keel's own thread pool. A thread cannot be stopped, so a sync tool that overruns its timeout
is *abandoned*: the run moves on at once (the call is journaled as a timeout that may still complete), and
`run_sync` does not wait for it, since it is not on the loop's default executor. Its idempotency key is freed,
so if the model retries the same call, the retry carries the same key and a side-effecting API can deduplicate.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

from keel._pipeline.state import CallOrdinals, RunState
from keel._pipeline.validate import ValidCall
from keel.tools.context import ToolContext

__all__ = ["ToolOutcome", "execute_call"]

Outcome = Literal["ok", "error", "timeout", "abandoned"]

_SYNC_TOOLS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="keel-tool")
"""Sync tools run here rather than on the loop's default executor, which `asyncio.run` waits for at exit."""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call produced."""

    valid: ValidCall
    outcome: Outcome
    """ok; error (it raised, or its result is not JSON); timeout (stopped); abandoned (a sync tool that
    overran its timeout and may still complete in its thread)."""
    content: str
    """The result as text (JSON for structured values), or the error the model will read."""
    latency_ms: float
    idempotency_key: str

    @property
    def ok(self) -> bool:
        """True when the tool returned a usable result."""
        return self.outcome == "ok"


def _serialize(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return to_json(value).decode()


async def _invoke(valid: ValidCall, context: ToolContext) -> Any:
    tool = valid.tool
    kwargs = {name: getattr(valid.args, name) for name in type(valid.args).model_fields}
    if tool.context_param is not None:
        kwargs[tool.context_param] = context
    if tool.is_async:
        return await tool.function(**kwargs)
    call = functools.partial(contextvars.copy_context().run, tool.function, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_SYNC_TOOLS, call)


def _key(run_id: str, signature: str, ordinal: int) -> str:
    """Same run, tool, arguments and ordinal → same key, across retries and resumes."""
    return hashlib.sha256(f"{run_id}\x00{signature}\x00{ordinal}".encode()).hexdigest()[:32]


async def execute_call(state: RunState, valid: ValidCall) -> ToolOutcome:
    """Run `valid` once, bounded by the tool's timeout and the run's remaining time."""
    spec = state.spec
    tool = valid.tool
    signature = f"{tool.name}\x00{valid.args.model_dump_json()}"
    ordinals = state.call_ordinals.setdefault(signature, CallOrdinals())
    ordinal = ordinals.take()
    key = _key(spec.run_id, signature, ordinal)
    remaining = state.remaining_s()
    timeout = tool.timeout_s if remaining is None else min(tool.timeout_s, remaining)
    started = time.perf_counter()
    if timeout <= 0:
        ordinals.release(ordinal)
        return ToolOutcome(valid, "timeout", f"Tool {tool.name!r} was not run: no time left.", 0.0, key)
    context = ToolContext(
        run_id=spec.run_id,
        call_id=valid.call.id,
        idempotency_key=key,
        tool_name=tool.name,
        agent=spec.agent,
        session_id=spec.session_id,
        attempt=1,
        store=spec.store,
    )
    outcome: Outcome = "ok"
    try:
        async with asyncio.timeout(timeout):
            value = await _invoke(valid, context)
        content = _serialize(value)
    except TimeoutError:
        if tool.is_async:
            outcome, content = "timeout", f"Tool {tool.name!r} timed out after {timeout:.3g}s."
        else:
            outcome = "abandoned"
            content = (
                f"Tool {tool.name!r} timed out after {timeout:.3g}s; it may still complete in the background, "
                "so check its effect before repeating it."
            )
    except PydanticSerializationError as exc:
        outcome = "error"
        content = f"Tool {tool.name!r} returned a value that cannot be serialized to JSON: {exc}"
    except Exception as exc:  # a tool's bug must not become the caller's exception
        outcome, content = "error", f"Tool {tool.name!r} failed: {type(exc).__name__}: {exc}"
    if outcome != "ok":
        ordinals.release(ordinal)
    return ToolOutcome(valid, outcome, content, (time.perf_counter() - started) * 1000, key)
