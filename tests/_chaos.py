"""The chaos suite's machinery: randomized scenarios, the rig that runs them, and the guarantees they check.

`tests/test_chaos.py` draws scenarios through hypothesis (so failures shrink) and `bench/chaos.py` through
`random.Random` (for thousands of runs); both build, run and judge them here, so the test and the benchmark check
exactly the same guarantees. See the test module's docstring for what is asserted and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from keel import Agent, Budget, EventKind, RunStatus, tool
from keel.journal import Event, Phase
from keel.recovery import LoopDetector, RetryPolicy
from keel.result import RunResult
from keel.store import MemoryStore
from keel.testing import ChaosModel, EffectLog, FlakyTool, GarbageTool, HangingTool
from keel.testing.faults import GarbageKind
from keel.testing.model_faults import FAULTS, Fault
from keel.tools import Tool

T = TypeVar("T")

FINAL = frozenset({RunStatus.COMPLETED, RunStatus.PARTIAL, RunStatus.ESCALATED, RunStatus.FAILED, RunStatus.REJECTED})
WALL_MARGIN_S = 2.0
"""How far past `Budget.timeout_s` a run may return: event-loop latency on a busy 2-core machine, not work."""
COST_TOLERANCE = 1e-9
GARBAGE_KINDS: tuple[GarbageKind, ...] = ("unserializable", "circular", "invalid_utf8", "surrogate", "huge")
Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "low", "low", "medium", "medium", "high", "critical")
"""Weighted towards severities that run: high and critical ones mostly pause the run for a person."""


# --- the generator: one description of a randomized run, drawn by hypothesis or by random.Random --------------------


class Draw(Protocol):
    """The random choices a scenario is made of; `HypothesisDraw` and `RandomDraw` implement it."""

    def integer(self, low: int, high: int) -> int: ...
    def real(self, low: float, high: float) -> float: ...
    def chance(self, p: float) -> bool: ...
    def choice(self, options: Sequence[T]) -> T: ...


@dataclass(frozen=True)
class RandomDraw:
    """Draws from a seeded `random.Random` (the benchmark's generator: fast, reproducible by seed)."""

    rng: random.Random

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def real(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]


@dataclass(frozen=True)
class Pace:
    """How slow a scenario may be: the test can afford real waits, the benchmark's 10,000 runs cannot."""

    max_delay_s: float = 0.01
    """Longest first backoff of a retry policy (and `retry_after_s` of a rate limit)."""
    p_delay: float = 1.0
    """Share of retry policies that wait at all (the others retry at once)."""
    hang_timeout_s: float = 0.05
    """`timeout_s` of the hanging tool."""
    p_hang: float = 0.3
    """Share of runs with a hanging tool."""
    max_timeout_s: float = 1.0
    """Longest `Budget.timeout_s`."""


@dataclass(frozen=True)
class LookupPlan:
    """``get_order``: a read-only lookup that fails at random, perhaps with a backup as its alternative."""

    p_fail: float
    transient: bool
    """Fails with a `ConnectionError` (retried) rather than a `ValueError` (handed to the model)."""
    retry: RetryPolicy | None
    backup_p_fail: float | None
    """``get_order_backup``'s failure rate when it is ``get_order``'s alternative; None: no alternative."""


@dataclass(frozen=True)
class RefundPlan:
    """``refund``: a side-effecting tool that fails before or after its effect; maybe paid, idempotent, required."""

    p_fail: float
    after: bool
    idempotent: bool
    cost_usd: float
    retry: RetryPolicy | None
    severity: Severity
    required: bool


@dataclass(frozen=True)
class HangPlan:
    """``fetch_report``: a tool that hangs past its timeout; ``fetch_record`` (garbage) may be its alternative."""

    sync: bool
    side_effects: bool
    retry: RetryPolicy | None
    timeout_s: float
    garbage_alternative: bool


@dataclass(frozen=True)
class Scenario:
    """One randomized run: the model's behaviour, the agent's policy, the budget and the tools."""

    seed: int
    faults: dict[Fault, float]
    p_answer: float
    fallbacks: int
    retry_after_s: float
    budget: Budget
    retry: RetryPolicy
    loop: LoopDetector
    guarded: bool
    lookup: LookupPlan | None
    refund: RefundPlan | None
    garbage: GarbageKind | None
    hang: HangPlan | None


def retry_policy(draw: Draw, pace: Pace) -> RetryPolicy:
    """1 to 4 attempts with tiny (or no) waits, so a run's retries cost milliseconds."""
    delay = draw.real(0.0, pace.max_delay_s) if draw.chance(pace.p_delay) else 0.0
    jitter = draw.real(0.0, pace.max_delay_s / 2) if draw.chance(pace.p_delay) else 0.0
    return RetryPolicy(
        max_attempts=draw.integer(1, 4), initial_delay_s=delay, max_delay_s=delay * 4, jitter=jitter, multiplier=2.0
    )


def maybe_policy(draw: Draw, pace: Pace) -> RetryPolicy | None:
    """A tool's own retry policy, for one tool in three."""
    return retry_policy(draw, pace) if draw.chance(1 / 3) else None


def budget(draw: Draw, pace: Pace) -> Budget:
    """A budget that bites: few steps, and token and cost ceilings around what a handful of calls take."""
    return Budget(
        max_steps=draw.integer(1, 12),
        max_tokens=draw.integer(200, 12_000) if draw.chance(0.7) else None,
        max_cost_usd=draw.real(0.0, 0.002) if draw.chance(0.6) else None,
        timeout_s=draw.real(0.05, pace.max_timeout_s),
        max_tool_rejections=draw.integer(1, 4),
        answer_reserve=draw.choice((0.0, 0.1, 0.1, 0.25)),
    )


def loop_detector(draw: Draw) -> LoopDetector:
    """The default detector, or a random one (stricter, looser, escalating, or off)."""
    if draw.chance(0.5):
        return LoopDetector()
    return LoopDetector(
        max_visits=draw.choice((None, 2, 3)),
        max_idle_steps=draw.choice((None, 2, 3, 5)),
        nudge=draw.chance(0.5),
        on_loop=draw.choice(("partial", "escalate")),
    )


def tools(draw: Draw, pace: Pace) -> tuple[LookupPlan | None, RefundPlan | None, GarbageKind | None, HangPlan | None]:
    """Which of the four tools the agent has, and how each misbehaves."""
    lookup = refund = garbage = hang = None
    if draw.chance(0.8):
        backup = draw.real(0.0, 1.0) if draw.chance(0.5) else None
        lookup = LookupPlan(draw.real(0.0, 1.0), draw.chance(0.7), maybe_policy(draw, pace), backup)
    if draw.chance(0.6):
        paid = draw.chance(0.3)
        refund = RefundPlan(
            p_fail=draw.real(0.0, 1.0),
            after=draw.chance(0.5),
            idempotent=draw.chance(0.3),
            cost_usd=draw.real(0.00001, 0.0005) if paid else 0.0,
            retry=maybe_policy(draw, pace),
            severity=draw.choice(SEVERITIES),
            required=draw.chance(0.2),
        )
    if draw.chance(0.4):
        garbage = draw.choice(GARBAGE_KINDS)
    if draw.chance(pace.p_hang):
        hang = HangPlan(
            sync=draw.chance(0.3),
            side_effects=draw.chance(0.3),
            retry=maybe_policy(draw, pace),
            timeout_s=pace.hang_timeout_s,
            garbage_alternative=garbage is not None and draw.chance(0.5),
        )
    return lookup, refund, garbage, hang


def scenario(draw: Draw, pace: Pace = Pace()) -> Scenario:
    """Draw one randomized run."""
    faults = {fault: draw.real(0.0, 0.06) for fault in FAULTS if draw.chance(0.6)}
    lookup, refund, garbage, hang = tools(draw, pace)
    return Scenario(
        seed=draw.integer(0, 2**32 - 1),
        faults=faults,
        p_answer=draw.real(0.01, 0.15),
        fallbacks=draw.choice((0, 0, 1, 2)),
        retry_after_s=draw.real(0.0, pace.max_delay_s) if draw.chance(pace.p_delay) else 0.0,
        budget=budget(draw, pace),
        retry=retry_policy(draw, pace),
        loop=loop_detector(draw),
        guarded=draw.chance(0.15),
        lookup=lookup,
        refund=refund,
        garbage=garbage,
        hang=hang,
    )


# --- building the run ------------------------------------------------------------------------------------------------


@tool
async def get_order(order_id: str) -> str:
    """Look an order up by its id."""
    return f"order {order_id}: shipped"


@tool(side_effects=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an amount on an order."""
    return f"refunded {amount} on order {order_id}"


@dataclass
class Injectors:
    """A scenario's fault injectors, whose counters are read after the run."""

    models: list[ChaosModel]
    flaky: dict[str, FlakyTool] = field(default_factory=dict)
    garbage: GarbageTool | None = None
    hang: HangingTool | None = None
    effects: EffectLog = field(default_factory=EffectLog)
    """Records every invocation of ``refund`` (the side-effecting tool) with its call id and attempt."""

    def invocations(self) -> Counter[str]:
        """How many times each tool's function was entered, by tool name."""
        counts: Counter[str] = Counter({name: flaky.calls for name, flaky in self.flaky.items()})
        if self.garbage is not None:
            counts[self.garbage.tool.name] = self.garbage.calls
        if self.hang is not None:
            counts[self.hang.tool.name] = self.hang.calls
        return counts

    def flaky_tool(self, inner: Tool, p_fail: float, seed: int, *, transient: bool = True, after: bool = False) -> Tool:
        """`inner`, failing with probability `p_fail`: a `ConnectionError` (retried) or a `ValueError` (not)."""

        def not_found() -> BaseException:
            return ValueError(f"injected fault: no such record in {inner.name}")

        flaky = FlakyTool(inner, p_fail, seed=seed, after=after, error=None if transient else not_found)
        self.flaky[inner.name] = flaky
        return flaky.tool


@dataclass(frozen=True)
class Rig:
    """The agent a scenario describes, and its injectors."""

    agent: Agent
    faults: Injectors


def _tools(s: Scenario, faults: Injectors) -> list[Tool]:
    """The tools the scenario gives the agent, wrapped in their injectors (which `faults` keeps)."""
    # Options go on the tools built at import: building a tool's schema per run would cost a third of the run.
    made: list[Tool] = []
    if (lookup := s.lookup) is not None:
        alternatives = ("get_order_backup",) if lookup.backup_p_fail is not None else ()
        primary = dataclasses.replace(get_order, retry=lookup.retry, alternatives=alternatives)
        made.append(faults.flaky_tool(primary, lookup.p_fail, s.seed, transient=lookup.transient))
        if lookup.backup_p_fail is not None:
            backup = dataclasses.replace(get_order, name="get_order_backup")
            made.append(faults.flaky_tool(backup, lookup.backup_p_fail, s.seed + 1))
    if (plan := s.refund) is not None:
        declared = dataclasses.replace(
            refund,
            idempotent=plan.idempotent,
            cost_usd=plan.cost_usd,
            retry=plan.retry,
            severity=plan.severity,
            required=plan.required,
        )
        made.append(faults.flaky_tool(faults.effects.wrap(declared), plan.p_fail, s.seed + 2, after=plan.after))
    if s.garbage is not None:
        faults.garbage = GarbageTool(s.garbage, name="fetch_record", size=20_000)
        made.append(faults.garbage.tool)
    if (hang := s.hang) is not None:
        faults.hang = HangingTool(
            "fetch_report", timeout_s=hang.timeout_s, hang_s=30.0, sync=hang.sync, side_effects=hang.side_effects
        )
        alternatives = ("fetch_record",) if hang.garbage_alternative else ()
        made.append(dataclasses.replace(faults.hang.tool, retry=hang.retry, alternatives=alternatives))
    return made


def build(s: Scenario) -> Rig:
    """The agent a scenario describes (in-memory store, no guards unless `guarded`), with its injectors."""
    models = [
        ChaosModel(
            seed=s.seed + i, p=s.faults, p_answer=s.p_answer, name=f"test:chaos-{i}", retry_after_s=s.retry_after_s
        )
        for i in range(1 + s.fallbacks)
    ]
    faults = Injectors(models)
    agent = Agent(
        "chaos",
        models[0],
        tools=_tools(s, faults),
        budget=s.budget,
        store=MemoryStore(),
        guards=None if s.guarded else [],
        retry=s.retry,
        fallback_models=models[1:],
        loop_detector=s.loop,
    )
    return Rig(agent, faults)


async def run_bounded(rig: Rig, s: Scenario) -> tuple[RunResult | None, float]:
    """Run the scenario; None when it did not return within its wall time plus `WALL_MARGIN_S`."""
    assert s.budget.timeout_s is not None
    started = time.monotonic()
    try:
        run = rig.agent.run("Check order 7 and refund it if needed.")
        result: RunResult | None = await asyncio.wait_for(run, s.budget.timeout_s + WALL_MARGIN_S)
    except TimeoutError:
        result = None
    finally:
        if rig.faults.hang is not None:
            rig.faults.hang.release()  # a sync hang the run abandoned: let its thread end
    return result, time.monotonic() - started


# --- the guarantees --------------------------------------------------------------------------------------------------


def allowed_attempts(declared: Tool, agent_policy: RetryPolicy) -> int:
    """A tool's attempt bound (`policy_for` in `_pipeline/recover.py`, restated).

    Its own ``retry=``; else one attempt for a non-idempotent side effect or a paid tool; else the agent's policy.
    """
    if declared.retry is not None:
        return declared.retry.max_attempts
    if (declared.side_effects and not declared.idempotent) or declared.cost_usd > 0:
        return 1
    return agent_policy.max_attempts


def model_calls(result: RunResult) -> tuple[list[Event], list[Event]]:
    """The run's model calls: its turns, and the attempts at the best-effort answer (the last phase of a run)."""
    calls = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    first = next((i for i, e in enumerate(calls) if e.phase is Phase.SUMMARIZATION), len(calls))
    return calls[:first], calls[first:]


def _tool_attempt_violations(rig: Rig, result: RunResult) -> list[str]:
    """Per tool call, attempts 1..k within the tool's bound, each retry announced; every invocation journaled."""
    problems: list[str] = []
    policy = rig.agent.retry
    per_call: dict[tuple[str, str], list[int]] = defaultdict(list)
    announced: set[tuple[str, str, int]] = set()
    for event in result.events:
        p = event.payload
        if event.kind is EventKind.RETRY_SCHEDULED and "call_id" in p:
            announced.add((p["call_id"], p["tool"], p["attempt"]))
        elif event.kind is EventKind.TOOL_CALLED and p["attempt"] > 0:  # 0: "unavailable", not run
            per_call[(p["call_id"], p["tool"])].append(p["attempt"])
            if p["attempt"] > 1 and (p["call_id"], p["tool"], p["attempt"]) not in announced:
                problems.append(f"attempts: seq {event.seq}: {p['tool']} attempt {p['attempt']} never announced")
    journaled: Counter[str] = Counter()
    for (call_id, name), seen in per_call.items():
        journaled[name] += len(seen)
        declared = rig.agent.tools.get(name)
        bound = allowed_attempts(declared, policy) if declared is not None else 0
        if seen != list(range(1, len(seen) + 1)) or len(seen) > bound:
            problems.append(f"attempts: {name} call {call_id} attempts {seen}, its policy allows {bound}")
    for name, entered in rig.faults.invocations().items():
        if entered > journaled[name]:
            problems.append(f"attempts: {name} invoked {entered} times, journaled {journaled[name]}")
    for effect in rig.faults.effects.read():
        if effect.attempt not in per_call.get((effect.call_id, effect.tool), []):
            problems.append(f"attempts: {effect.tool} effect of {effect.call_id} attempt {effect.attempt} unjournaled")
    return problems


def attempt_violations(rig: Rig, result: RunResult) -> list[str]:
    """Tool and model attempts within their policies, each retry announced, no tool invoked unjournaled."""
    problems = _tool_attempt_violations(rig, result)
    policy = rig.agent.retry
    announced: set[str] = set()
    previous: Event | None = None
    switched = 0
    for event in result.events:
        p = event.payload
        if event.kind is EventKind.RETRY_SCHEDULED and "model" in p:
            announced.add(f"{p['model']}#{p['attempt']}")
        elif event.kind is EventKind.FALLBACK_USED and p.get("model"):
            switched += 1
        elif event.kind is EventKind.MODEL_CALLED:
            problems += _model_attempt(event, previous, policy.max_attempts, announced)
            previous = event
    if switched > len(rig.agent.fallback_models):  # the chain only moves forward: each fallback model once
        problems.append(f"attempts: {switched} switches to a fallback model, {len(rig.agent.fallback_models)} exist")
    return problems


def _model_attempt(event: Event, previous: Event | None, bound: int, announced: set[str]) -> list[str]:
    """Attempt n > 1 of a model follows its failed, announced attempt n - 1; no model gets more than `bound`."""
    attempt, model = event.payload["attempt"], event.payload["model"]
    if attempt > bound:
        return [f"attempts: seq {event.seq}: {model} attempt {attempt}, the agent's policy allows {bound}"]
    if attempt == 1:
        return []
    follows = (
        previous is not None
        and previous.payload["model"] == model
        and previous.payload["attempt"] == attempt - 1
        and "error" in previous.payload
        and f"{model}#{attempt}" in announced
    )
    return [] if follows else [f"attempts: seq {event.seq}: {model} attempt {attempt} follows no failed attempt"]


def spend_violations(s: Scenario, result: RunResult) -> list[str]:
    """Tokens and cost (model calls and paid tools) within the budget; at most `max_steps` model turns."""
    problems = []
    usage, budget = result.usage, s.budget
    if budget.max_tokens is not None and usage.total_tokens > budget.max_tokens:
        problems.append(f"spend: {usage.total_tokens} tokens > max_tokens={budget.max_tokens}")
    if budget.max_cost_usd is not None and usage.cost_usd > budget.max_cost_usd + COST_TOLERANCE:
        problems.append(f"spend: ${usage.cost_usd:.9f} > max_cost_usd={budget.max_cost_usd:.9f}")
    turns, _ = model_calls(result)
    if len(turns) > budget.max_steps:
        problems.append(f"spend: {len(turns)} model calls before the best-effort answer > max_steps={budget.max_steps}")
    return problems


def step_violations(s: Scenario, result: RunResult) -> list[str]:
    """At most one model call past the step budget: the best-effort answer (E5: "one best-effort call")."""
    turns, best_effort = model_calls(result)
    if len(turns) + len(best_effort) > s.budget.max_steps + 1:
        calls = len(turns) + len(best_effort)
        return [
            f"steps: {calls} model calls > max_steps + 1 = {s.budget.max_steps + 1} ({len(best_effort)} best-effort)"
        ]
    return []


def journal_violations(result: RunResult) -> list[str]:
    """The journal is gap-free, bracketed by start and finish, sums to the usage and answers real calls."""
    events = result.events
    problems = []
    if [e.seq for e in events] != list(range(1, len(events) + 1)):
        problems.append("journal: seqs are not 1..n")
    kinds = [e.kind for e in events]
    if not events or kinds[0] is not EventKind.RUN_STARTED or kinds[-1] is not EventKind.RUN_FINISHED:
        problems.append("journal: does not start with run_started and end with run_finished")
    elif kinds.count(EventKind.RUN_STARTED) != 1 or kinds.count(EventKind.RUN_FINISHED) != 1:
        problems.append("journal: more than one run_started or run_finished")
    elif events[-1].payload["status"] != result.status.value:
        problems.append(f"journal: run_finished says {events[-1].payload['status']}, the result {result.status}")
    if sum(e.tokens_in + e.tokens_out for e in events) != result.usage.total_tokens:
        problems.append("journal: event tokens do not sum to usage.total_tokens")
    if not math.isclose(sum(e.cost_usd for e in events), result.usage.cost_usd, rel_tol=1e-9, abs_tol=1e-12):
        problems.append("journal: event costs do not sum to usage.cost_usd")
    if result.status is RunStatus.ESCALATED and EventKind.ESCALATED not in kinds:
        problems.append("journal: an escalated run without an escalated event")
    return problems + _call_order_violations(events)


def _call_order_violations(events: Sequence[Event]) -> list[str]:
    """Tool events answer a call a model made earlier; a tool marked as started is followed by its tool_called."""
    problems = []
    proposed: set[str] = set()
    for index, event in enumerate(events):
        p = event.payload
        if event.kind is EventKind.MODEL_CALLED:
            proposed.update(call["id"] for call in p.get("tool_calls") or ())
        elif event.kind in (EventKind.TOOL_CALLED, EventKind.TOOL_REJECTED) and p["call_id"] not in proposed:
            problems.append(f"journal: seq {event.seq}: {event.kind.value} of {p['call_id']}, which no model proposed")
        elif event.kind is EventKind.CHECKPOINT and p.get("stage") == "tool_started":
            later = events[index + 1 :]
            if not any(e.kind is EventKind.TOOL_CALLED and e.payload["call_id"] == p.get("call_id") for e in later):
                problems.append(f"journal: seq {event.seq}: {p.get('call_id')} started but never journaled")
    return problems


def violations(s: Scenario, rig: Rig, result: RunResult | None, elapsed_s: float) -> list[str]:
    """Every broken guarantee of one run, each prefixed with its family (terminates, attempts, spend, journal).

    The step bound (`step_violations`) is checked on its own: see `test_a_stopped_run_makes_one_best_effort_call`.
    """
    if result is None:
        return [f"terminates: still running {elapsed_s:.2f}s after it started (timeout_s={s.budget.timeout_s})"]
    problems = [] if result.status in FINAL else [f"terminates: status {result.status} is not final"]
    return problems + attempt_violations(rig, result) + spend_violations(s, result) + journal_violations(result)


def excerpt(result: RunResult | None, limit: int = 80) -> str:
    """The journal, one line per event, for a failure message."""
    if result is None:
        return "(no result)"
    keys = ("call_id", "tool", "model", "attempt", "outcome", "error", "status", "reason", "limit", "action", "stage")
    lines = []
    for e in result.events[:limit]:
        brief = {k: e.payload[k] for k in keys if e.payload.get(k) not in (None, "")}
        lines.append(f"{e.seq:3} {e.kind.value:<15} {e.phase.value:<13} tokens={e.tokens_in + e.tokens_out} {brief}")
    return "\n".join(lines)


# --- the properties --------------------------------------------------------------------------------------------------
