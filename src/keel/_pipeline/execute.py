"""Execute: run one validated tool call within its timeout, catching everything it throws.

A tool's failure is the model's problem to work around, not the caller's exception: errors, timeouts and
results that cannot be serialized all come back as a tool error message, and are journaled.

Each sync tool call runs on a daemon thread of its own. A thread cannot be stopped, so a sync tool that overruns
its timeout is *abandoned*: the run moves on at once (the call is journaled as `abandoned`: it may still
complete), neither `run_sync` nor the process's exit waits for it, and a hung call cannot starve the others of
threads. Its idempotency key is freed, so if the model retries the same call, the retry carries the same key
and a side-effecting API can deduplicate.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

from keel._pipeline.state import CallOrdinals, RunState
from keel._pipeline.validate import ValidCall
from keel.tools.context import StoreView, ToolContext

__all__ = ["ToolOutcome", "call_signature", "execute_call", "idempotency_key"]

Outcome = Literal["ok", "error", "timeout", "abandoned", "unavailable", "interrupted"]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call produced."""

    valid: ValidCall
    outcome: Outcome
    """ok; error (it raised, or its result is not JSON); timeout (stopped); abandoned (a sync tool that
    overran its timeout and may still complete in its thread); unavailable (not run: given up on earlier);
    interrupted (started, then the process died: its effect is unknown)."""
    content: str
    """The result as text (JSON for structured values), or the error the model will read."""
    latency_ms: float
    idempotency_key: str
    ordinal: int = 0
    """Which idempotency ordinal the call took (journaled, so a resumed run frees and takes the same ones)."""
    shown: str | None = None
    """What the model is shown instead of `content`: quarantined by a screen, or the tool given up on."""
    error: BaseException | None = None
    """What the tool raised (a timeout is a `TimeoutError`); decides whether a retry may help. Not journaled."""
    spent_usd: float = 0.0
    """What invoking the tool cost (its `cost_usd` per invocation; every attempt and alternative in all, once
    the failure chain is done)."""
    escalate: str | None = None
    """Set when a ``required`` tool could not be recovered: why a person must decide."""

    @property
    def ok(self) -> bool:
        """True when the tool returned a usable result."""
        return self.outcome == "ok"


def _serialize(value: Any) -> str:
    if isinstance(value, str):
        # A lone surrogate (a decoding bug in the tool) cannot be stored or sent as UTF-8: replace it here, so
        # the journal and the model get the rest of the text instead of the run failing on the write.
        return value if value.isascii() else value.encode("utf-8", "replace").decode("utf-8")
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
    return await _in_daemon_thread(functools.partial(contextvars.copy_context().run, tool.function, **kwargs))


def _in_daemon_thread(call: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run `call` on a new daemon thread; its outcome settles the returned future, unless that was abandoned."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # cancelled by the timeout: the result is no one's any more
            outcome()

    def work() -> None:
        try:
            value = call()
        except BaseException as exc:  # handed to the awaiting coroutine, which decides
            report: Callable[[], None] = functools.partial(future.set_exception, exc)
        else:
            report = functools.partial(future.set_result, value)
        try:
            loop.call_soon_threadsafe(settle, report)
        except RuntimeError:
            pass  # the loop is closed: the run ended long ago and abandoned this call

    threading.Thread(target=work, name="keel-tool", daemon=True).start()
    return future


def call_signature(valid: ValidCall) -> str:
    """A call's identity for idempotency: the tool and its canonical (validated) arguments."""
    return f"{valid.tool.name}\x00{valid.args.model_dump_json()}"


def idempotency_key(run_id: str, signature: str, ordinal: int) -> str:
    """Same run, tool, arguments and ordinal → same key, across retries and resumes."""
    return hashlib.sha256(f"{run_id}\x00{signature}\x00{ordinal}".encode()).hexdigest()[:32]


async def execute_call(state: RunState, valid: ValidCall, *, attempt: int = 1) -> ToolOutcome:
    """Run `valid` once (its `attempt`-th try), bounded by the tool's timeout and the run's remaining time."""
    spec = state.spec
    tool = valid.tool
    signature = call_signature(valid)
    ordinals = state.call_ordinals.setdefault(signature, CallOrdinals())
    ordinal = ordinals.take()
    key = idempotency_key(spec.run_id, signature, ordinal)
    remaining = state.time_for_work()
    timeout = tool.timeout_s if remaining is None else min(tool.timeout_s, remaining)
    started = time.perf_counter()
    if timeout <= 0:
        ordinals.release(ordinal)
        content = f"Tool {tool.name!r} was not run: no time left."
        return ToolOutcome(valid, "timeout", content, 0.0, key, ordinal, error=TimeoutError(content))
    context = ToolContext(
        run_id=spec.run_id,
        call_id=valid.call.id,
        idempotency_key=key,
        tool_name=tool.name,
        agent=spec.agent,
        session_id=spec.session_id,
        attempt=attempt,
        store=StoreView(spec.store),  # reads only: a tool cannot write the journal or decide reviews
    )
    outcome: Outcome = "ok"
    error: BaseException | None = None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            value = await _invoke(valid, context)
        content = _serialize(value)
    except TimeoutError as exc:
        error = exc
        if not deadline.expired():  # the tool's own timeout (a socket, its own wait_for): an ordinary failure
            outcome, content = "error", f"Tool {tool.name!r} failed: TimeoutError: {exc}"
        elif tool.is_async:
            outcome, content = "timeout", f"Tool {tool.name!r} timed out after {timeout:.3g}s."
        else:
            outcome = "abandoned"
            content = (
                f"Tool {tool.name!r} timed out after {timeout:.3g}s; it may still complete in the background, "
                "so check its effect before repeating it."
            )
    except PydanticSerializationError as exc:
        outcome, error = "error", exc
        content = f"Tool {tool.name!r} returned a value that cannot be serialized to JSON: {exc}"
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the run itself is being cancelled
        outcome, error = "error", exc
        content = f"Tool {tool.name!r} failed: it was cancelled from inside ({exc!r})"
    except (Exception, SystemExit) as exc:  # a tool's bug, or its sys.exit(), must not end the caller's program
        outcome, error = "error", exc
        content = f"Tool {tool.name!r} failed: {type(exc).__name__}: {exc}"
    if outcome != "ok":
        ordinals.release(ordinal)
    latency_ms = (time.perf_counter() - started) * 1000
    return ToolOutcome(valid, outcome, content, latency_ms, key, ordinal, error=error, spent_usd=tool.cost_usd)
