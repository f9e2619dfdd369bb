"""Execute: run one validated tool call within its timeout, catching everything it throws.

A tool's failure is the model's problem to work around, not the caller's exception: errors, timeouts and
results that cannot be serialized all come back as a tool error message, and are journaled.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

from keel._pipeline.state import RunState
from keel._pipeline.validate import ValidCall
from keel.tools.context import ToolContext

__all__ = ["ToolOutcome", "execute_call", "idempotency_key"]

Outcome = Literal["ok", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call produced."""

    valid: ValidCall
    outcome: Outcome
    content: str
    """The result as text (JSON for structured values), or the error the model will read."""
    latency_ms: float
    idempotency_key: str

    @property
    def ok(self) -> bool:
        """True when the tool returned a usable result."""
        return self.outcome == "ok"


def idempotency_key(run_id: str, step: int, index: int, call_name: str, arguments: str) -> str:
    """A key that is the same whenever the same call of the same run is made again (retry, resume)."""
    digest = hashlib.sha256(f"{run_id}\x00{step}\x00{index}\x00{call_name}\x00{arguments}".encode())
    return digest.hexdigest()[:32]


def _serialize(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return to_json(value).decode()


async def _invoke(valid: ValidCall, context: ToolContext | None) -> Any:
    tool = valid.tool
    kwargs = {name: getattr(valid.args, name) for name in type(valid.args).model_fields}
    if tool.context_param is not None:
        kwargs[tool.context_param] = context
    if tool.is_async:
        return await tool.function(**kwargs)
    # Sync tools run in a worker thread so a slow one cannot stall the loop or escape its timeout.
    return await asyncio.to_thread(tool.function, **kwargs)


async def execute_call(state: RunState, valid: ValidCall, index: int) -> ToolOutcome:
    """Run `valid` once, bounded by the tool's timeout and the run's remaining time."""
    spec = state.spec
    tool = valid.tool
    key = idempotency_key(spec.run_id, state.steps, index, tool.name, valid.call.arguments)
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
    remaining = state.remaining_s()
    timeout = tool.timeout_s if remaining is None else max(0.0, min(tool.timeout_s, remaining))
    started = time.perf_counter()
    outcome: Outcome = "ok"
    try:
        async with asyncio.timeout(timeout):
            value = await _invoke(valid, context)
        content = _serialize(value)
    except TimeoutError:
        outcome, content = "timeout", f"Tool {tool.name!r} timed out after {timeout:.3g}s."
    except PydanticSerializationError as exc:
        outcome = "error"
        content = f"Tool {tool.name!r} returned a value that cannot be serialized to JSON: {exc}"
    except Exception as exc:  # a tool's bug must not become the caller's exception
        outcome, content = "error", f"Tool {tool.name!r} failed: {type(exc).__name__}: {exc}"
    latency_ms = (time.perf_counter() - started) * 1000
    return ToolOutcome(valid, outcome, content, latency_ms, key)
