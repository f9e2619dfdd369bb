"""Fault injectors for chaos tests: tools and models that fail the way production ones do, reproducibly.

```python
from keel.testing import FaultyModel, FlakyTool, ScriptedModel, call, reply
flaky = FlakyTool(get_order, p_fail=0.3, seed=7)
model = FaultyModel(ScriptedModel([call("get_order", order_id="1"), reply("done")]), schedule=["rate_limit"])
result = Agent("support", model, tools=[flaky.tool]).run_sync("Where is order 1?")
assert flaky.calls == flaky.failures + flaky.successes
```

Every injector is deterministic under a `seed` (for calls made one after another) and counts what it did, so a
test can assert on the run *and* on the faults that shaped it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from keel.errors import ConfigError, ModelError
from keel.models.base import FinishReason, Model, ModelRequest, ModelResponse, RequestUsage, ToolCall, ToolSpec
from keel.models.pricing import Price
from keel.models.tokens import count_request_tokens, count_text_tokens
from keel.testing.function import FunctionModel
from keel.tools.context import ToolContext
from keel.tools.tool import Tool, tool

__all__ = [
    "ChaosModel", "Effect", "EffectLog", "Fault", "FaultyModel", "FlakyTool", "GarbageKind", "GarbageTool",
    "HangingTool", "InjectedFault",
]  # fmt: skip

Fault = Literal[
    "rate_limit", "server_error", "client_error", "loop", "unknown_tool", "malformed_arguments", "refusal", "empty",
    "truncated",
]  # fmt: skip
"""What `FaultyModel` can do to a turn: three provider errors (429 and 503 retryable, 400 not), or a bad response."""
FAULTS: tuple[Fault, ...] = get_args(Fault)
GarbageKind = Literal["unserializable", "circular", "invalid_utf8", "surrogate", "huge"]
_ERRORS: dict[str, tuple[int, bool, str]] = {
    "rate_limit": (429, True, "rate limit exceeded"),
    "server_error": (503, True, "service unavailable"),
    "client_error": (400, False, "invalid request"),
}
_MALFORMED = ('{"query": ', "{'query': 'single quotes'}", "not json at all", '{"query": "x",}', "")


class InjectedFault(ConnectionError):
    """The error `FlakyTool` raises by default: a `ConnectionError`, so retry policies see a transient failure."""


def _check_probability(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability between 0 and 1, got {value!r}")


class FlakyTool:
    """Wraps `tool` so each call fails with probability `p_fail`; `.tool` is the `Tool` to give the agent.

    The wrapped tool keeps the name, schema and policy of `tool`. Counters are read after the run: every call
    is either a `failures` (injected), a `successes` (the tool returned) or an error of the tool itself.

    Args:
        tool: the tool to make flaky.
        p_fail: probability that a call fails, 0..1.
        seed: seeds the draws: the same seed fails the same calls (when calls are made one after another).
        error: builds the exception to raise (default `InjectedFault`).
        after: fail *after* the tool ran (its effect happened, the answer was lost) instead of before it.
    """

    def __init__(
        self,
        tool: Tool,
        p_fail: float,
        *,
        seed: int | None = None,
        error: Callable[[], BaseException] | None = None,
        after: bool = False,
    ) -> None:
        _check_probability("p_fail", p_fail)
        self.p_fail = p_fail
        self.calls = 0
        self.failures = 0
        self.successes = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # sync tools run on threads of their own
        self._error = error or (lambda: InjectedFault(f"injected fault: tool {tool.name!r} failed"))
        self._after = after
        self.tool: Tool = _around(tool, self._hook)
        """The flaky tool, for ``Agent(tools=[...])``."""

    def _hook(self, kwargs: dict[str, Any]) -> Callable[[Any], Any]:
        with self._lock:
            self.calls += 1
            failed = self._rng.random() < self.p_fail
            self.failures += failed
        if failed and not self._after:
            raise self._error()
        return functools.partial(self._settle, failed)

    def _settle(self, failed: bool, result: Any) -> Any:
        if failed:
            raise self._error()
        with self._lock:
            self.successes += 1
        return result


def _identity(value: Any) -> Any:
    return value


def _around(inner: Tool, hook: Callable[[dict[str, Any]], Callable[[Any], Any]], **changes: Any) -> Tool:
    """`inner` with `hook(kwargs)` run before its function; what the hook returns is applied to the result."""
    function = inner.function
    if inner.is_async:

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            finish = hook(kwargs)
            return finish(await function(*args, **kwargs))

        return dataclasses.replace(inner, function=functools.wraps(function)(run_async), **changes)

    def run(*args: Any, **kwargs: Any) -> Any:
        finish = hook(kwargs)
        return finish(function(*args, **kwargs))

    return dataclasses.replace(inner, function=functools.wraps(function)(run), **changes)


class HangingTool:
    """A tool that hangs for `hang_s` seconds, far past its `timeout_s`, to test timeouts and bounded waits.

    The async variant (default) is cancelled at the timeout (`cancelled` counts it). The sync variant blocks a
    thread, which Keel abandons at the timeout; Keel runs tools on daemon threads, so neither variant keeps the
    interpreter alive. `release()` wakes sync calls still hanging.
    """

    def __init__(
        self,
        name: str = "hang",
        *,
        timeout_s: float = 1.0,
        hang_s: float = 3600.0,
        sync: bool = False,
        side_effects: bool = False,
    ) -> None:
        self.calls = 0
        self.cancelled = 0
        self._released = threading.Event()
        description = "Fetch the report (slow)."

        def hang_sync() -> str:
            self.calls += 1
            self._released.wait(hang_s)
            return "released"

        async def hang_async() -> str:
            self.calls += 1
            try:
                await asyncio.sleep(hang_s)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return "released"

        declare = tool(name=name, description=description, timeout_s=timeout_s, side_effects=side_effects)
        self.tool: Tool = declare(hang_sync if sync else hang_async)
        """The hanging tool, for ``Agent(tools=[...])``."""

    def release(self) -> None:
        """Wake the sync calls hanging now and to come: they return ``"released"``."""
        self._released.set()


class GarbageTool:
    """A tool that returns garbage of the given `kind`, to check it is journaled as an error rather than a crash.

    Kinds: ``unserializable`` (an arbitrary object), ``circular`` (a list containing itself), ``invalid_utf8``
    (bytes that are not UTF-8), ``surrogate`` (a str holding a lone surrogate, as ``surrogateescape`` decoding
    leaves), ``huge`` (a string of `size` characters: serializable, but no context window holds it).
    """

    def __init__(self, kind: GarbageKind = "unserializable", *, name: str = "garbage", size: int = 1_000_000) -> None:
        if kind not in _GARBAGE:
            raise ConfigError(f"GarbageTool kind must be one of {list(_GARBAGE)}, got {kind!r}")
        self.kind = kind
        self.calls = 0

        def garbage() -> Any:
            self.calls += 1
            return _GARBAGE[kind](size)

        self.tool: Tool = tool(name=name, description="Fetch the raw record.")(garbage)
        """The garbage-returning tool, for ``Agent(tools=[...])``."""


def _circular(size: int) -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


_GARBAGE: dict[str, Callable[[int], Any]] = {
    "unserializable": lambda size: object(),
    "circular": _circular,
    "invalid_utf8": lambda size: b"\xff\xfe\xc3(garbage\x80",
    "surrogate": lambda size: b"caf\xe9 \xff".decode("utf-8", errors="surrogateescape"),
    "huge": lambda size: ("lorem ipsum " * (size // 12 + 1))[:size],
}


@dataclasses.dataclass(frozen=True, slots=True)
class Effect:
    """One invocation of a side-effecting tool, as `EffectLog` recorded it."""

    tool: str
    idempotency_key: str
    """The call's `ToolContext.idempotency_key`: the same for a retry or a resumed call of the same action."""
    run_id: str
    call_id: str
    attempt: int
    pid: int
    """The process that ran it (crash/resume tests run several)."""
    at: float
    """Wall-clock time (``time.time()``)."""


class EffectLog:
    """Records each invocation of side-effecting tools with its idempotency key, to count effects that ran twice.

    With a `path`, every record is also appended to that file as one JSON line, flushed and fsynced before the
    tool runs, so a test can count invocations across processes that crash and resume.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.effects: list[Effect] = []
        """The invocations recorded by this process, in order."""
        self._lock = threading.Lock()

    def record(self, context: ToolContext) -> Effect:
        """Record one invocation; call it from a tool that takes a `ToolContext`, or use `wrap`."""
        c = context
        effect = Effect(c.tool_name, c.idempotency_key, c.run_id, c.call_id, c.attempt, os.getpid(), time.time())
        with self._lock:
            self.effects.append(effect)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(dataclasses.asdict(effect)) + "\n")
                    file.flush()
                    os.fsync(file.fileno())
        return effect

    def wrap(self, inner: Tool) -> Tool:
        """`inner`, recording each invocation before it runs (it receives its own `ToolContext` if it takes one)."""
        param = inner.context_param or "_keel_effect_context"

        def hook(kwargs: dict[str, Any]) -> Callable[[Any], Any]:
            self.record(kwargs[param] if inner.context_param else kwargs.pop(param))
            return _identity

        return _around(inner, hook, context_param=param)

    def read(self) -> list[Effect]:
        """Every recorded invocation: from the file (all processes) when there is one, else from this process.

        A last line cut short by a crash is skipped.
        """
        if self.path is None:
            with self._lock:
                return list(self.effects)
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        return [Effect(**json.loads(line)) for line in lines if line.endswith("\n")]

    def counts(self) -> Counter[str]:
        """How many times each idempotency key was invoked (see `read`)."""
        return Counter(effect.idempotency_key for effect in self.read())

    def duplicates(self) -> dict[str, int]:
        """The idempotency keys invoked more than once, with their counts: effects that may have happened twice."""
        return {key: n for key, n in self.counts().items() if n > 1}


def _example(schema: Mapping[str, Any], rng: random.Random, defs: Mapping[str, Any], depth: int = 0) -> Any:
    """A value valid under a simple JSON schema (pydantic's): objects, arrays, enums, strings, numbers, booleans."""
    if "$ref" in schema:
        return _example(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], rng, defs, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if options := schema.get("anyOf") or schema.get("oneOf"):
        usable = [o for o in options if o.get("type") != "null"] or options
        return _example(rng.choice(usable), rng, defs, depth)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        required = schema.get("required", ())
        properties = schema.get("properties", {})
        return {name: _example(sub, rng, defs, depth + 1) for name, sub in properties.items() if name in required}
    if kind == "array":
        count = max(schema.get("minItems", 0), rng.randint(0, 2) if depth < 3 else 0)
        return [_example(schema.get("items", {}), rng, defs, depth + 1) for _ in range(count)]
    return _scalar(kind, schema, rng)


def _scalar(kind: str, schema: Mapping[str, Any], rng: random.Random) -> Any:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 101) - 1)
    if kind == "integer":
        return rng.randint(int(low), max(int(low), int(high)))
    if kind == "number":
        return round(rng.uniform(low, max(low, high)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    formats = {"date": "2024-05-01", "date-time": "2024-05-01T12:00:00Z", "email": "someone@example.com"}
    text = formats.get(schema.get("format", ""), f"value-{rng.randint(1, 9999)}")
    text = text.ljust(schema.get("minLength", 0), "x")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def _valid_call(call_id: str, tools: Sequence[ToolSpec], rng: random.Random) -> ToolCall:
    spec = rng.choice(tools)
    arguments = _example(spec.parameters, rng, spec.parameters.get("$defs", {}))
    return ToolCall(call_id, spec.name, json.dumps(arguments))


def _unknown_name(tools: Sequence[ToolSpec]) -> str:
    """A plausible hallucination: a near-miss of a real tool's name, or a tool nobody declared."""
    names = {t.name for t in tools}
    name = f"{tools[0].name}_v2" if tools else "search_web"
    while name in names:
        name += "_x"
    return name


class FaultyModel(Model):
    """Wraps `inner` and replaces some of its turns with faults, from a fixed `schedule` then at random.

    A faulted turn does not reach `inner` (a `ScriptedModel` resumes its script after the fault). Faults:
    ``rate_limit`` (retryable 429 with `retry_after_s`), ``server_error`` (retryable 503), ``client_error``
    (non-retryable 400), ``loop`` (the last tool calls again), ``unknown_tool``, ``malformed_arguments``
    (invalid JSON), ``refusal`` (``content_filter``), ``empty`` (no text, no calls), ``truncated`` (cut off at
    the output-token limit, finish reason ``length``). Responses carry usage, and `name`, `price` and
    `count_input_tokens` are the inner model's, so budgets apply as they would to `inner`.

    Args:
        inner: the model whose turns are passed through when no fault is drawn.
        schedule: the fault (or None: pass through) for each of the first requests, in order.
        p: probability of each fault per request once the schedule is played (at most 1 in all).
        seed: seeds the draws; the same seed injects the same faults.
        retry_after_s: the wait a ``rate_limit`` error asks for.
    """

    def __init__(
        self,
        inner: Model,
        *,
        schedule: Sequence[Fault | None] = (),
        p: Mapping[Fault, float] | None = None,
        seed: int | None = None,
        retry_after_s: float = 0.1,
    ) -> None:
        self.p: dict[Fault, float] = dict(p or {})
        for fault, chance in self.p.items():
            _check_probability(f"p[{fault!r}]", chance)
        unknown = [f for f in [*self.p, *schedule] if f is not None and f not in FAULTS]
        if unknown or sum(self.p.values()) > 1.0 + 1e-9:
            raise ConfigError(f"faults must be among {FAULTS} with probabilities summing to at most 1: {unknown}")
        self.inner = inner
        self.name = inner.name
        self.schedule = tuple(schedule)
        self.retry_after_s = retry_after_s
        self.injected: Counter[Fault] = Counter()
        """How many times each fault was injected."""
        self.faults: list[Fault | None] = []
        """The fault of each request so far (None: passed through)."""
        self._rng = random.Random(seed)
        self._last_calls: tuple[ToolCall, ...] = ()

    @property
    def price(self) -> Price | None:
        """The inner model's price."""
        return self.inner.price

    def count_input_tokens(self, request: ModelRequest) -> int:
        """The inner model's count."""
        return self.inner.count_input_tokens(request)

    async def aclose(self) -> None:
        """Close the inner model."""
        await self.inner.aclose()

    def _next_fault(self) -> Fault | None:
        turn = len(self.faults)
        if turn < len(self.schedule):
            return self.schedule[turn]
        if not self.p:
            return None
        draw = self._rng.random()
        for fault in FAULTS:
            draw -= self.p.get(fault, 0.0)
            if draw < 0:
                return fault
        return None

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Pass `request` to the inner model, or inject the next fault instead."""
        fault = self._next_fault()
        self.faults.append(fault)
        if fault is None:
            response = await self.inner.request(request)
        else:
            self.injected[fault] += 1
            response = self._inject(fault, request)
        if response.tool_calls:
            self._last_calls = response.tool_calls
        return response

    def _inject(self, fault: Fault, request: ModelRequest) -> ModelResponse:
        if fault in _ERRORS:
            status, retryable, message = _ERRORS[fault]
            wait = self.retry_after_s if status == 429 else None
            raise ModelError(
                f"injected fault: {status} {message}", retryable=retryable, status_code=status, retry_after_s=wait
            )
        call_id = f"fault_{len(self.faults)}"
        text: str | None = None
        calls: tuple[ToolCall, ...] = ()
        finish: FinishReason = "tool_calls"
        if fault == "loop":
            calls = self._last_calls or ((_valid_call(call_id, request.tools, self._rng),) if request.tools else ())
        elif fault == "unknown_tool":
            calls = (ToolCall(call_id, _unknown_name(request.tools), "{}"),)
        elif fault == "malformed_arguments":
            name = request.tools[0].name if request.tools else "lookup"
            calls = (ToolCall(call_id, name, self._rng.choice(_MALFORMED)),)
        elif fault == "refusal":
            text, finish = "I'm sorry, but I can't help with that request.", "content_filter"
        elif fault == "truncated":
            text, finish = "Here is what I found so far: the order", "length"
        else:  # empty, or a loop with nothing to repeat
            finish = "stop"
        out = request.max_output_tokens if fault == "truncated" else 1
        response = _response(text, calls, finish, request, self.inner.count_input_tokens(request), out)
        return dataclasses.replace(response, provider_id=call_id, model_name=self.name, notes=(f"injected: {fault}",))


def _response(
    text: str | None, calls: tuple[ToolCall, ...], finish: FinishReason, request: ModelRequest, tokens_in: int, out: int
) -> ModelResponse:
    """A response with realistic usage: at least `out` output tokens, and what the content takes."""
    produced = (text or "") + "".join(c.name + c.arguments for c in calls)
    tokens_out = min(max(out, count_text_tokens(produced)), request.max_output_tokens)
    return ModelResponse(text, calls, RequestUsage(tokens_in, tokens_out), finish)


def _random_turn(request: ModelRequest, rng: random.Random, p_answer: float, turn: int) -> ModelResponse:
    """Call a random allowed tool with valid arguments, or answer (valid typed output when a schema is set)."""
    text: str | None = None
    calls: tuple[ToolCall, ...] = ()
    if request.tools and rng.random() >= p_answer:
        count = 1 if rng.random() < 0.8 else 2
        calls = tuple(_valid_call(f"chaos_{turn}_{i}", request.tools, rng) for i in range(count))
    elif request.output_schema is not None:
        text = json.dumps(_example(request.output_schema, rng, request.output_schema.get("$defs", {})))
    else:
        text = f"Here is my answer after {turn} turns."
    reasoning = rng.randint(10, 200)  # models spend output tokens on reasoning too
    return _response(text, calls, "tool_calls" if calls else "stop", request, count_request_tokens(request), reasoning)


CHAOS_FAULTS: dict[Fault, float] = dict.fromkeys(FAULTS, 0.05)
"""`ChaosModel`'s default: each fault on 5% of turns (45% of turns faulty)."""


class ChaosModel(FaultyModel):
    """A model that acts at random, for property-based tests: whatever the model does, the run must end bounded.

    Each turn it injects a fault (see `FaultyModel`; ``loop`` repeats a previous call) with probabilities `p`,
    else calls a random allowed tool with arguments valid under its schema, or answers (with probability
    `p_answer`). Usage is realistic (input grows with the conversation) and priced, so budgets bite.

    Args:
        seed: the same seed gives the same behaviour for the same requests.
        p: probability of each fault per turn (default `CHAOS_FAULTS`).
        p_answer: probability of a final answer on a turn without a fault (with no tools: always).
        price: USD per million ``(input, output)`` tokens.
        name: the model name recorded in the journal.
        retry_after_s: the wait a ``rate_limit`` error asks for.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        p: Mapping[Fault, float] | None = None,
        p_answer: float = 0.2,
        price: tuple[float, float] = (0.15, 0.60),
        name: str = "test:chaos",
        retry_after_s: float = 0.01,
    ) -> None:
        _check_probability("p_answer", p_answer)
        rng = random.Random(None if seed is None else f"chaos:{seed}")
        turns = itertools.count(1)

        def act(request: ModelRequest) -> ModelResponse:
            return _random_turn(request, rng, p_answer, next(turns))

        inner = FunctionModel(act, price=price, name=name)
        super().__init__(inner, p=CHAOS_FAULTS if p is None else p, seed=seed, retry_after_s=retry_after_s)
