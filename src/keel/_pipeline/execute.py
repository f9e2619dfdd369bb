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

from keel._pipeline.clean import clean_text, clean_value
from keel._pipeline.failure import describe, stops_the_program
from keel._pipeline.state import CallOrdinals, RunState
from keel._pipeline.validate import ValidCall
from keel.tools.context import StoreView, ToolContext

__all__ = ["MAX_RESULT_CHARS", "ToolOutcome", "call_signature", "execute_call", "fit_result", "idempotency_key"]

MAX_RESULT_CHARS = 100_000
"""The most of one tool result (or error) the model is shown, about 25,000 tokens; the journal keeps all of it."""

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


def fit_result(content: str) -> str:
    """`content` as the model is shown it: whole, or its head and tail around a marker saying what was cut.

    A pure function of the text, so a resumed run rebuilds the conversation the model saw from the journal.
    """
    if len(content) <= MAX_RESULT_CHARS:
        return content
    head, tail = MAX_RESULT_CHARS * 3 // 4, MAX_RESULT_CHARS // 4
    cut = len(content) - head - tail
    marker = (
        f"\n[… {cut:,} characters cut here: this result has {len(content):,} characters, more than the "
        f"{MAX_RESULT_CHARS:,} a tool result may put in the conversation; ask for a narrower result if you need "
        "the middle …]\n"
    )
    return content[:head] + marker + content[-tail:]


def _serialize(value: Any) -> str:
    """The result as text: a string as it is, anything else as JSON; NULs and lone surrogates replaced (`clean`)."""
    if isinstance(value, str):
        return clean_text(value)
    try:
        text = value.model_dump_json() if isinstance(value, BaseModel) else to_json(value).decode()
    except PydanticSerializationError:
        if isinstance(value, BaseModel):
            value = value.model_dump()
        text = to_json(clean_value(value)).decode()  # a lone surrogate in a string of it; raises if still not JSON
    return clean_text(text)


async def _invoke(valid: ValidCall, context: ToolContext) -> Any:
    tool = valid.tool
    kwargs = {name: getattr(valid.args, name) for name in type(valid.args).model_fields}
    if tool.context_param is not None:
        kwargs[tool.context_param] = context
    if tool.is_async:
        return await tool.function(**kwargs)
    return await _in_daemon_thread(functools.partial(contextvars.copy_context().run, tool.function, **kwargs))


_UNAWAITABLE = (StopIteration, StopAsyncIteration, GeneratorExit)
"""Exceptions a future cannot carry into a coroutine as they are (they mean something to generators)."""


class _Carried(Exception):
    """A sync tool's `_UNAWAITABLE` exception on its way to the coroutine awaiting it."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


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
            carried = _Carried(exc) if isinstance(exc, _UNAWAITABLE) else exc
            report: Callable[[], None] = functools.partial(future.set_exception, carried)
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
    outcome, content, error = await _outcome(valid, context, timeout)
    content = clean_text(content)  # an error message may carry what the result would have
    if outcome != "ok":
        ordinals.release(ordinal)
    latency_ms = (time.perf_counter() - started) * 1000
    return ToolOutcome(valid, outcome, content, latency_ms, key, ordinal, error=error, spent_usd=tool.cost_usd)


async def _outcome(valid: ValidCall, context: ToolContext, limit_s: float) -> tuple[Outcome, str, BaseException | None]:
    """Invoke the tool within `limit_s` seconds: its result as text, or what went wrong as the model will read it."""
    name = valid.tool.name
    deadline = asyncio.timeout(limit_s)
    try:
        async with deadline:
            value = await _invoke(valid, context)
    except TimeoutError as exc:
        if not deadline.expired():  # the tool's own timeout (a socket, its own wait_for): an ordinary failure
            return "error", f"Tool {name!r} failed: {describe(exc)}", exc
        if valid.tool.is_async:
            return "timeout", f"Tool {name!r} timed out after {limit_s:.3g}s.", exc
        content = (
            f"Tool {name!r} timed out after {limit_s:.3g}s; it may still complete in the background, "
            "so check its effect before repeating it."
        )
        return "abandoned", content, exc
    except BaseException as raised:  # a tool's bug, its sys.exit(), even a GeneratorExit: a failure of the call
        failure = raised.original if isinstance(raised, _Carried) else raised
        if stops_the_program(failure):
            raise  # Ctrl-C, or the run itself being cancelled
        if isinstance(failure, asyncio.CancelledError):
            return "error", f"Tool {name!r} failed: it was cancelled from inside ({describe(failure)})", failure
        return "error", f"Tool {name!r} failed: {describe(failure)}", failure
    try:
        return "ok", _serialize(value), None
    except Exception as exc:  # a circular, too deep or unknown value, or a str/repr that raises
        return "error", f"Tool {name!r} returned a value that cannot be serialized to JSON: {describe(exc)}", exc
