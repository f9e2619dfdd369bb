"""`@tool`: turn a plain function into a `Tool` a model can call, with its schema and its risk."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args, overload

from pydantic import BaseModel

from keel.errors import ToolDefinitionError
from keel.recovery.retry import RetryPolicy
from keel.tools._schema import function_schema

__all__ = ["Severity", "Tool", "tool"]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


@dataclass(frozen=True, slots=True)
class Tool:
    """A function a model may call, with everything Keel needs to govern the call."""

    name: str
    """The name the model uses."""
    description: str
    """What the tool does, from the docstring's summary unless given."""
    parameters: dict[str, Any]
    """JSON schema of the arguments, from the type hints; `ToolContext` parameters excluded."""
    function: Callable[..., Any]
    """The wrapped function, sync or async."""
    args_model: type[BaseModel]
    """Validates the arguments a model proposes."""
    context_param: str | None = None
    """The parameter that receives the `ToolContext`, if any."""
    is_async: bool = False
    severity: Severity = "low"
    """How much harm a wrong call can do: low, medium, high or critical (escalation policy keys on it).
    `@tool` makes it ``"high"`` for a side-effecting tool that declares none: conservative by default."""
    side_effects: bool = False
    """True when the call changes the world (payments, emails, writes): never cached, idempotency key given."""
    timeout_s: float = 30.0
    """Wall-time limit of one call; the run's remaining time caps it further."""
    cost_usd: float = 0.0
    """What one call costs (a paid API), reserved under the budget and spending limits before the call and
    charged once the tool has been invoked."""
    trusted: bool = False
    """True when the tool's output comes from a source the agent's owner controls (its own database): it is
    neither screened for prompt injection nor does reading it taint the run (G5). Web pages, emails, tickets
    and third-party APIs are untrusted."""
    retry: RetryPolicy | None = None
    """How a failed call is tried again; None takes the agent's policy, except for a side-effecting tool that is
    not `idempotent` (one attempt: a failed call may still have had its effect)."""
    alternatives: tuple[str, ...] = ()
    """Tools (on the same agent) tried in order, with the same arguments, when this one keeps failing (E1)."""
    required: bool = False
    """When every attempt and alternative fails, a person decides (the run escalates) rather than the model
    going on without the capability."""
    idempotent: bool = False
    """Calling it twice with the same arguments has the effect of calling it once: safe to retry and to re-issue
    after a crash, even with side effects."""
    cache_ttl: float | None = None
    """Seconds a result may be reused for the same arguments (C2); None: never cached. Only for tools without side
    effects, or idempotent ones."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (handy in tests)."""
        return self.function(*args, **kwargs)


def _make_tool(
    func: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    severity: Severity | None,
    side_effects: bool,
    timeout_s: float,
    trusted: bool,
    cost_usd: float,
    retry: RetryPolicy | None,
    alternatives: tuple[str, ...] | list[str],
    required: bool,
    idempotent: bool,
    cache_ttl: float | None = None,
) -> Tool:
    if not callable(func):
        raise ToolDefinitionError(f"@tool needs a function, got {func!r}")
    tool_name: str = name or str(getattr(func, "__name__", ""))
    if not tool_name.isidentifier():
        raise ToolDefinitionError(f"tool name {tool_name!r} must be a valid identifier")
    if severity is None:  # a tool that changes the world and says nothing about the harm is treated as harmful
        severity = "high" if side_effects else "low"
    if severity not in SEVERITIES:
        raise ToolDefinitionError(f"tool {tool_name!r}: severity must be one of {SEVERITIES}, got {severity!r}")
    if (
        isinstance(cost_usd, bool)
        or not isinstance(cost_usd, int | float)
        or not math.isfinite(cost_usd)
        or cost_usd < 0
    ):
        raise ToolDefinitionError(f"tool {tool_name!r}: cost_usd must be a finite amount >= 0, got {cost_usd!r}")
    if timeout_s <= 0:
        raise ToolDefinitionError(f"tool {tool_name!r}: timeout_s must be positive, got {timeout_s!r}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ToolDefinitionError(f"tool {tool_name!r}: retry must be a RetryPolicy, got {retry!r}")
    if isinstance(alternatives, str) or not all(isinstance(a, str) and a for a in alternatives):
        raise ToolDefinitionError(
            f"tool {tool_name!r}: alternatives must be a list of tool names, got {alternatives!r}"
        )
    if tool_name in alternatives:
        raise ToolDefinitionError(f"tool {tool_name!r} cannot be its own alternative")
    _check_cache_ttl(tool_name, cache_ttl, side_effects=side_effects, idempotent=idempotent)
    schema = function_schema(func, tool_name, description)
    if cache_ttl is not None and schema.context_param is not None:
        raise ToolDefinitionError(
            f"tool {tool_name!r} reads its ToolContext (run, session, user): its results may differ per run, so it "
            "cannot declare cache_ttl"
        )
    return Tool(
        name=tool_name,
        description=schema.description,
        parameters=schema.parameters,
        function=func,
        args_model=schema.args_model,
        context_param=schema.context_param,
        is_async=inspect.iscoroutinefunction(func),
        severity=severity,
        side_effects=side_effects,
        timeout_s=float(timeout_s),
        trusted=trusted,
        cost_usd=float(cost_usd),
        retry=retry,
        alternatives=tuple(dict.fromkeys(alternatives)),
        required=required,
        idempotent=idempotent,
        cache_ttl=None if cache_ttl is None else float(cache_ttl),
    )


def _check_cache_ttl(name: str, cache_ttl: float | None, *, side_effects: bool, idempotent: bool) -> None:
    if cache_ttl is None:
        return
    if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, int | float) or not 0 < cache_ttl < math.inf:
        raise ToolDefinitionError(f"tool {name!r}: cache_ttl must be a positive number of seconds, got {cache_ttl!r}")
    if side_effects and not idempotent:
        raise ToolDefinitionError(
            f"tool {name!r} has side effects: its results cannot be cached (a cached call would skip the effect) "
            "unless it is declared idempotent=True"
        )


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    severity: Severity | None = None,
    side_effects: bool = False,
    timeout_s: float = 30.0,
    trusted: bool = False,
    cost_usd: float = 0.0,
    retry: RetryPolicy | None = None,
    alternatives: tuple[str, ...] | list[str] = (),
    required: bool = False,
    idempotent: bool = False,
    cache_ttl: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    severity: Severity | None = None,
    side_effects: bool = False,
    timeout_s: float = 30.0,
    trusted: bool = False,
    cost_usd: float = 0.0,
    retry: RetryPolicy | None = None,
    alternatives: tuple[str, ...] | list[str] = (),
    required: bool = False,
    idempotent: bool = False,
    cache_ttl: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare a tool: ``@tool`` or ``@tool(severity="high", side_effects=True)``.

    The schema comes from the type hints, the description from the docstring (Google style ``Args:``
    entries describe the parameters). A parameter annotated `ToolContext` receives the call's context and is
    left out of the schema. Unsupported parameter types raise `ToolDefinitionError` here, at import time,
    not when a model first calls the tool.

    Recovery (E1): ``retry=RetryPolicy(...)`` overrides the agent's policy; ``alternatives=["other_tool"]`` are
    tried in order with the same arguments once retries are spent; ``required=True`` escalates to a person
    instead of letting the model go on without the tool; ``idempotent=True`` declares a side-effecting tool
    safe to retry and to re-issue after a crash.

    Caching (C2): ``cache_ttl=300`` reuses a result for the same arguments for five minutes (journaled as a
    ``cache_hit``); refused for a side-effecting tool unless it is idempotent.
    """
    make = functools.partial(
        _make_tool,
        name=name,
        description=description,
        severity=severity,
        side_effects=side_effects,
        timeout_s=timeout_s,
        trusted=trusted,
        cost_usd=cost_usd,
        retry=retry,
        alternatives=alternatives,
        required=required,
        idempotent=idempotent,
        cache_ttl=cache_ttl,
    )
    return make(func) if func is not None else make
