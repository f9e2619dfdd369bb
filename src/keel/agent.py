"""`Agent`: a model, its instructions, its allowed tools and its bounds.

Wiring only; the work is done in `keel._pipeline`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from pydantic import TypeAdapter

from keel._pipeline import RunSpec, resume_pipeline, run_pipeline
from keel._pipeline.clean import clean_text
from keel.budget import Budget
from keel.cost.cache import CacheBackend, CachePolicy, cache_backend
from keel.cost.limits import SpendLimit, applicable_limits
from keel.cost.tiers import ModelTiers
from keel.errors import ConfigError
from keel.guardrails.base import Guard
from keel.guardrails.escalation import Escalation
from keel.guardrails.exfiltration import ExfiltrationGuard
from keel.guardrails.injection import InjectionScreen
from keel.guardrails.pii import PIIGuard
from keel.models import Model, infer_model
from keel.observe.base import Observer
from keel.recovery.loop import LoopDetector
from keel.recovery.retry import RetryPolicy
from keel.result import RunResult
from keel.store import Store, open_store
from keel.tools import Tool, ToolRegistry

__all__ = ["Agent"]

logger = logging.getLogger("keel")

_DEFAULT_CACHE = CachePolicy()


class Agent:
    """A governed agent: every run is bounded by its `Budget`, every tool call checked against its tools.

    Args:
        name: how the agent appears in the journal, the CLI and the dashboard.
        model: ``"provider:model"`` (``"openai:gpt-4o-mini"``), a `Model` instance, or `ModelTiers` (each phase on
            the cheapest tier able to do it, escalating when it falls short).
        instructions: the system prompt.
        tools: the allow-list: functions decorated with `@tool` (plain functions are wrapped).
        budget: hard limits per run (steps, tokens, cost, wall time, rejected tool calls).
        output: a type (usually a pydantic model) the final answer must validate against; None for text.
        store: where runs are journaled: a `Store`, a URL/path, or None for ``KEEL_STORE`` / ``.keel/keel.db``.
        max_output_tokens: cap on each model response; part of every call's worst-case reservation.
        max_output_retries: corrections asked for when the final answer fails the output schema.
        limits: spending limits across runs and processes (per hour / per day, USD / tokens, per agent,
            session, user or globally), enforced before every model call through the store's ledger.
        guards: the guards of this agent. `InjectionScreen`s screen the task and untrusted tool output; the
            others judge every final answer, in order. None (the default) means
            ``[InjectionScreen(), PIIGuard(mode="redact"), ExfiltrationGuard()]``; ``[]`` turns guarding off.
        escalation: when a run pauses for a person (see `Escalation`). None (the default) means
            ``Escalation()``: critical tools always, high ones once the run has read untrusted data.
            ``Escalation(severity=None, after_untrusted=None)`` never pauses.
        retry: how failed model calls and tools are retried (tools may declare their own); None means
            ``RetryPolicy()``: 3 attempts with exponential backoff and jitter.
        fallback_models: models tried in order, for the rest of the run, when the current one keeps failing.
        loop_detector: which loops end a run and how (see `LoopDetector`); None means ``LoopDetector()``: a
            repeated state or 4 steps without new information get one nudge, then end the run PARTIAL.
        observers: watch every run's journal as it is written (OpenTelemetry export: `keel.observe.otel`).
        cache: what is cached and where (see `CachePolicy`); the default keeps responses of deterministic models
            and results of tools that declare ``cache_ttl`` in the agent's store. None turns caching off.
    """

    def __init__(
        self,
        name: str,
        model: Model | str,
        *,
        instructions: str = "",
        tools: Sequence[Tool | Callable[..., Any]] = (),
        budget: Budget | None = None,
        output: type[Any] | None = None,
        store: Store | str | None = None,
        max_output_tokens: int = 1024,
        max_output_retries: int = 2,
        limits: Sequence[SpendLimit] = (),
        guards: Sequence[Guard] | None = None,
        escalation: Escalation | None = None,
        retry: RetryPolicy | None = None,
        fallback_models: Sequence[Model | str] = (),
        loop_detector: LoopDetector | None = None,
        observers: Sequence[Observer] = (),
        cache: CachePolicy | None = _DEFAULT_CACHE,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError("Agent needs a non-empty name")
        if max_output_tokens < 1:
            raise ConfigError(f"max_output_tokens must be positive, got {max_output_tokens}")
        if max_output_retries < 0:
            raise ConfigError(f"max_output_retries must not be negative, got {max_output_retries}")
        self.name = name
        self.model = infer_model(model)
        self.instructions = instructions
        self.tools = ToolRegistry(tools)
        self.budget = budget or Budget()
        self.output = output
        self._output_adapter: TypeAdapter[Any] | None = None
        self._output_schema: dict[str, Any] | None = None
        if output is not None and output is not str:
            try:
                self._output_adapter = TypeAdapter(output)
                self._output_schema = self._output_adapter.json_schema()
            except Exception as exc:
                raise ConfigError(f"output type {output!r} has no JSON schema: {exc}") from exc
        self._store_arg = store
        self._store: Store | None = None
        self.max_output_tokens = max_output_tokens
        self.max_output_retries = max_output_retries
        self.limits: tuple[SpendLimit, ...] = tuple(limits)
        for limit in self.limits:
            if not isinstance(limit, SpendLimit):
                raise ConfigError(f"limits must be SpendLimit instances, got {limit!r}")
        self.guards: tuple[Guard, ...] = _checked_guards(guards)
        self.escalation = _checked("escalation", escalation, Escalation) or Escalation()
        self.retry = _checked("retry", retry, RetryPolicy) or RetryPolicy()
        if isinstance(fallback_models, str | Model):
            fallback_models = [fallback_models]
        self.fallback_models: tuple[Model, ...] = tuple(infer_model(m) for m in fallback_models)
        self.loop_detector = _checked("loop_detector", loop_detector, LoopDetector) or LoopDetector()
        self.observers: tuple[Observer, ...] = tuple(observers)
        for observer in self.observers:
            if not isinstance(observer, Observer):
                raise ConfigError(f"{observer!r} is not an observer: it needs an `on_event(event, run)` method")
        self.cache = _checked("cache", cache, CachePolicy)
        self._cache_backend: CacheBackend | None = None
        self._defined_in = _caller_module()
        self._check_prices()

    def _check_prices(self) -> None:
        """Every money bound needs every model it may call to have a price (else calls would count as free)."""
        needs = [
            ("Budget(max_cost_usd=…)", self.budget.max_cost_usd is not None),
            ("a USD SpendLimit", any(c.unit == "usd" for limit in self.limits for c in limit.ceilings())),
            ("Escalation(max_cost_usd=…)", self.escalation.max_cost_usd is not None),
        ]
        tiered = self.model.models if isinstance(self.model, ModelTiers) else (self.model,)
        for model in (*tiered, *self.fallback_models):
            for what, needed in needs:
                if needed and model.price is None:
                    raise ConfigError(
                        f"{what} needs the price of {model.name!r}, which the pricing table lacks: add it with "
                        "keel.models.set_price() or a KEEL_PRICING file (unpriced calls would count as free)"
                    )

    @property
    def store(self) -> Store:
        """The store this agent journals to (opened on first use, so importing an agent writes nothing)."""
        if self._store is None:
            arg = self._store_arg
            self._store = arg if arg is not None and not isinstance(arg, str) else open_store(arg)
        return self._store

    def with_store(self, store: Store | str) -> Agent:
        """A copy of this agent that journals to `store`; model, tools and policy are shared."""
        clone = copy.copy(self)
        clone._store_arg = store
        clone._store = None
        clone._cache_backend = None  # the default cache lives in the store: the clone's is the new store's
        return clone

    async def run(self, task: str, *, session_id: str | None = None, user: str | None = None) -> RunResult:
        """Run `task` to its end and return the result (a bound tripping is a status, never an exception).

        Args:
            task: what the user asks.
            session_id: groups runs of one conversation (and keys ``scope="session"`` spending limits).
            user: who the run is for; keys ``scope="user"`` spending limits.
        """
        if not isinstance(task, str):
            raise ConfigError(f"task must be a string, got {type(task).__name__}")
        for name, value in (("session_id", session_id), ("user", user)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string or None, got {type(value).__name__}")
        run_id = f"run-{uuid.uuid4().hex[:16]}"
        # NULs and lone surrogates cannot be stored or sent (see `keel._pipeline.clean`): replaced on the way in.
        session_id, user = (clean_text(v) if v is not None else None for v in (session_id, user))
        return await run_pipeline(self._spec(run_id, clean_text(task), session_id, user))

    async def resume(self, run_id: str, *, force: bool = False) -> RunResult:
        """Continue a run that paused for a person (ESCALATED) or whose process died (still marked running).

        The run goes on from its journal: nothing that already ran runs again; an approved action runs once, a
        denied one is reported to the model as denied. It may pause again (another approval needed). A run whose
        process died is taken over only when that process is gone from this host; `force` takes over a run Keel
        cannot check (its process was on another host). A side effect that was started and may have happened is
        not repeated without a person's approval, unless the tool is idempotent or takes the idempotency key.

        Raises:
            UnknownRunError: no such run in this agent's store.
            ResumeError: the run has finished, is still running (its process is alive, or cannot be checked
                without `force`), was resumed meanwhile by another process, belongs to another agent, or a review
                item is still pending.
        """
        row = await self.store.get_run(run_id)
        events = await self.store.events(run_id)
        user = events[0].payload.get("user") if events else None
        return await resume_pipeline(self._spec(run_id, row.task, row.session_id, user), force=force)

    def _spec(self, run_id: str, task: str, session_id: str | None, user: str | None) -> RunSpec:
        return RunSpec(
            run_id=run_id,
            agent=self.name,
            task=task,
            session_id=session_id,
            model=self.model,
            instructions=self.instructions,
            registry=self.tools,
            budget=self.budget,
            store=self.store,
            output_type=self.output if self._output_adapter is not None else None,
            output_adapter=self._output_adapter,
            output_schema=self._output_schema,
            max_output_tokens=self.max_output_tokens,
            max_output_retries=self.max_output_retries,
            spend_limits=tuple(applicable_limits(self.limits, agent=self.name, session_id=session_id, user=user)),
            input_screens=tuple(g for g in self.guards if isinstance(g, InjectionScreen)),
            output_guards=tuple(g for g in self.guards if not isinstance(g, InjectionScreen)),
            escalation=self.escalation,
            user=user,
            defined_in=self._defined_in,
            retry=self.retry,
            fallback_models=self.fallback_models,
            loop_detector=self.loop_detector,
            observers=self.observers,
            cache=self._cache(),
            cache_policy=self.cache,
        )

    def _cache(self) -> CacheBackend | None:
        """The cache backend, made on first use (the store's, unless the policy names another)."""
        if self.cache is not None and self._cache_backend is None:
            self._cache_backend = cache_backend(self.cache.backend, self.store)
        return self._cache_backend

    async def aclose(self) -> None:
        """Close what the agent holds on the running event loop: model connections, a Redis cache's client.

        `run_sync` does it at the end of its loop; code that awaits `run` on its own loop calls it when done (the
        next run reopens what it needs).
        """
        for model in (self.model, *self.fallback_models):
            await model.aclose()
        if self._cache_backend is not None:
            try:
                await self._cache_backend.close()
            except Exception:  # a cache that cannot close (Redis gone) must not turn a finished run into an error
                logger.warning("could not close the cache %s", self._cache_backend.name, exc_info=True)

    async def _then_close_model(self, work: Coroutine[Any, Any, RunResult]) -> RunResult:
        # The loop `run_sync` made ends with this call: connections opened on it must close on it, not be
        # garbage-collected later with a ResourceWarning (or fail on a loop that is already closed).
        try:
            return await work
        finally:
            await self.aclose()

    def _sync(self, work: Coroutine[Any, Any, RunResult], name: str) -> RunResult:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._then_close_model(work))
        work.close()
        raise ConfigError(f"{name}_sync() cannot be called from a running event loop; use `await agent.{name}(...)`")

    def run_sync(self, task: str, *, session_id: str | None = None, user: str | None = None) -> RunResult:
        """`run` for code without an event loop."""
        return self._sync(self.run(task, session_id=session_id, user=user), "run")

    def resume_sync(self, run_id: str, *, force: bool = False) -> RunResult:
        """`resume` for code without an event loop."""
        return self._sync(self.resume(run_id, force=force), "resume")


def _caller_module() -> dict[str, str] | None:
    """The module (and file) that constructed the agent, so ``keel resume`` can import it again."""
    caller = sys._getframe(2).f_globals  # 0: this function, 1: Agent.__init__, 2: the code that built the agent
    module, file = caller.get("__name__"), caller.get("__file__")
    if not isinstance(module, str):
        return None
    return {"module": module, "file": file} if isinstance(file, str) else {"module": module}


T = TypeVar("T")


def _checked(name: str, value: T | None, kind: type[T]) -> T | None:
    """`value` when it is None or a `kind`; a `ConfigError` naming the setting otherwise."""
    if value is not None and not isinstance(value, kind):
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise ConfigError(f"{name} must be {article} {kind.__name__}, got {value!r}")
    return value


def default_guards() -> tuple[Guard, ...]:
    """The guards of an agent that configures none: injection screening in; PII redaction and exfiltration out."""
    return (InjectionScreen(), PIIGuard(mode="redact"), ExfiltrationGuard())


def _checked_guards(guards: Sequence[Guard] | None) -> tuple[Guard, ...]:
    if guards is None:
        return default_guards()
    checked = tuple(guards)
    for guard in checked:
        if not isinstance(guard, Guard):
            raise ConfigError(f"{guard!r} is not a guard: it needs a `name` and a `check(text, context)` method")
    return checked
