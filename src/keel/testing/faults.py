"""Tool fault injectors for chaos tests: tools that fail the way production ones do, reproducibly.

```python
from keel.testing import FaultyModel, FlakyTool, ScriptedModel, call, reply
flaky = FlakyTool(get_order, p_fail=0.3, seed=7)
model = FaultyModel(ScriptedModel([call("get_order", order_id="1"), reply("done")]), schedule=["rate_limit"])
result = Agent("support", model, tools=[flaky.tool]).run_sync("Where is order 1?")
assert flaky.calls == flaky.failures + flaky.successes
```

The model injectors (`FaultyModel`, `ChaosModel`) are in `keel.testing.model_faults`. Every injector is
deterministic under a `seed` (for calls made one after another) and counts what it did, so a
test can assert on the run *and* on the faults that shaped it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from keel.errors import ConfigError
from keel.tools.context import ToolContext
from keel.tools.tool import Tool, tool

__all__ = ["Effect", "EffectLog", "FlakyTool", "GarbageKind", "GarbageTool", "HangingTool", "InjectedFault"]

GarbageKind = Literal["unserializable", "circular", "invalid_utf8", "surrogate", "huge"]


class InjectedFault(ConnectionError):
    """The error `FlakyTool` raises by default: a `ConnectionError`, so retry policies see a transient failure."""


def check_probability(name: str, value: float) -> None:
    """A `ConfigError` unless `value` is a probability (shared by the tool and model injectors)."""
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
        check_probability("p_fail", p_fail)
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
