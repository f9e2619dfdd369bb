"""Chaos at scale: N randomized runs, what happened in them, and how many broke a guarantee (which must be 0).

Each run is drawn by the generator of ``tests/test_chaos.py`` over a plain ``random.Random`` (run ``i`` of seed
``S`` is ``random.Random(f"S:i")``, so any run can be replayed alone with ``--replay i``): a `ChaosModel` with
random fault rates and fallback models, a random budget, retry policy and loop detector, and tools that fail,
return garbage or hang. Every run is checked by the same functions the test asserts with: it terminates
(within its wall-time budget plus a margin) with a final status and without raising; attempts stay within
each retry policy and every invocation is journaled; tokens, cost and model turns stay within the budget; the
journal is consistent; and at most one model call is made past ``max_steps`` (the best-effort answer).

To keep 10,000 runs to about half a minute on two cores, this pace is faster than the test's: retry policies and
rate limits wait (up to 2 ms) in one run in ten, and one run in ten has a hanging tool (10 ms timeout). Runs are
spread over ``--workers`` processes (default: one per core), each run on its own event loop, one at a time.

    .venv/bin/python bench/chaos.py [-n 10000] [--seed 0] [--workers N] [--json]
    .venv/bin/python bench/chaos.py --seed S --replay I    # run I alone: its scenario, violations, journal

Exit status: 0 when no run broke a guarantee, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The generator and the checks are the chaos test's own, imported rather than copied, so the two never drift.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _machine import cpu_model, version

from _chaos import (
    Pace,
    RandomDraw,
    Rig,
    Scenario,
    build,
    excerpt,
    model_calls,
    run_bounded,
    scenario,
    step_violations,
    violations,
)
from keel import Budget, EventKind, RunStatus
from keel.result import RunResult

PACE = Pace(max_delay_s=0.002, p_delay=0.1, hang_timeout_s=0.01, p_hang=0.1)
"""Waits in a tenth of the runs, hanging tools in a tenth: the rest run as fast as the pipeline goes."""
CHUNK = 50
"""Runs per task handed to a worker: small enough to balance two workers, large enough to amortize the hand-off."""
FAMILIES = ("terminates", "attempts", "spend", "steps", "journal", "exception")
BEST_EFFORT_DONE = "best-effort answer"


@dataclass
class Tally:
    """What a batch of runs did, summed; batches from different workers add up."""

    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    features: Counter[str] = field(default_factory=Counter)
    """Runs with at least one of each recovery event (retry, fallback, degradation, …)."""
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected, by kind."""
    work: Counter[str] = field(default_factory=Counter)
    """Model calls, tool attempts and events, in all."""
    violations: Counter[str] = field(default_factory=Counter)
    """Broken guarantees by family (a run can break several)."""
    examples: dict[str, tuple[int, str]] = field(default_factory=dict)
    """The first run (index, message) that broke each family."""
    max_overshoot_s: float = 0.0
    """The longest a run returned after its `Budget.timeout_s`."""

    def add(self, other: Tally) -> None:
        """Add another batch's counts into this one."""
        self.runs += other.runs
        for mine, theirs in (
            (self.statuses, other.statuses),
            (self.features, other.features),
            (self.faults, other.faults),
            (self.work, other.work),
            (self.violations, other.violations),
        ):
            mine.update(theirs)
        for family, found in other.examples.items():
            if family not in self.examples or found[0] < self.examples[family][0]:
                self.examples[family] = found
        self.max_overshoot_s = max(self.max_overshoot_s, other.max_overshoot_s)


def draw(seed: int, index: int) -> Scenario:
    """Run `index` of the batch seeded `seed` (string seeds hash the same in every process)."""
    return scenario(RandomDraw(random.Random(f"{seed}:{index}")), PACE)


def _features(result: RunResult) -> set[str]:
    """Which recoveries and bounds this run went through."""
    found = set()
    for event in result.events:
        p = event.payload
        match event.kind:
            case EventKind.RETRY_SCHEDULED:
                found.add("retry (tool)" if "call_id" in p else "retry (model)")
            case EventKind.FALLBACK_USED if p.get("degraded"):
                found.add("degradation (tool given up)")
            case EventKind.FALLBACK_USED:
                found.add("fallback model" if p.get("model") else "alternative tool")
            case EventKind.LOOP_DETECTED:
                found.add("loop nudged" if p.get("action") == "nudge" else "loop broken (or escalated)")
            case EventKind.BUDGET_REFUSED:
                found.add("budget refusal")
            case EventKind.TOOL_REJECTED:
                found.add("tool call rejected")
            case EventKind.ESCALATED:
                found.add("escalation")
    if model_calls(result)[1]:
        found.add("best-effort call")
    if any(line.startswith(BEST_EFFORT_DONE) for line in result.report.done):
        found.add("best-effort answer")
    return found


def _injected(s: Scenario, rig: Rig) -> Counter[str]:
    """The faults the injectors put into this run, by kind."""
    faults: Counter[str] = Counter()
    for model in rig.faults.models:
        faults.update({f"model: {fault}": n for fault, n in model.injected.items()})
    for name, flaky in rig.faults.flaky.items():
        when = "after its effect" if name == "refund" and s.refund is not None and s.refund.after else "raised"
        faults[f"tool: {name} failed ({when})"] += flaky.failures
    if (garbage := rig.faults.garbage) is not None:
        faults[f"tool: garbage result ({garbage.kind})"] += garbage.calls
    if (hang := rig.faults.hang) is not None:
        faults[f"tool: hang past its timeout ({'sync' if s.hang and s.hang.sync else 'async'})"] += hang.calls
    return +faults


def check_one(seed: int, index: int) -> tuple[Scenario, RunResult | None, list[str], Rig | None, float]:
    """Run one scenario and list what it broke; an exception is itself a broken guarantee, not a crash here."""
    s = draw(seed, index)
    try:
        rig = build(s)
        result, elapsed_s = asyncio.run(run_bounded(rig, s))
    except Exception as exc:  # the promise is that a run never raises: count it, keep going
        return s, None, [f"exception: {type(exc).__name__}: {exc}"], None, 0.0
    found = violations(s, rig, result, elapsed_s)
    if result is not None:
        found += step_violations(s, result)
    return s, result, found, rig, elapsed_s


_warm = False


def warm_up() -> None:
    """Run one untallied scenario per process first: the first run pays for loading the tokenizer and compiling
    the guards' patterns, which would eat the wall-time budget of whichever run comes first."""
    global _warm
    if not _warm:
        s = scenario(RandomDraw(random.Random("warm-up")), PACE)
        s = dataclasses.replace(s, guarded=True, budget=Budget(max_steps=4, timeout_s=10.0))
        asyncio.run(run_bounded(build(s), s))
        _warm = True


def run_batch(seed: int, indices: range) -> Tally:
    """Run the scenarios `indices` of `seed` one after another; a worker's task."""
    warm_up()
    tally = Tally()
    for index in indices:
        s, result, found, rig, elapsed_s = check_one(seed, index)
        tally.runs += 1
        for problem in found:
            family = problem.split(":", 1)[0]
            tally.violations[family] += 1
            tally.examples.setdefault(family, (index, problem))
        if result is None or rig is None:
            tally.statuses["(no result)"] += 1
            continue
        tally.statuses[result.status.value] += 1
        tally.features.update(_features(result))
        tally.faults.update(_injected(s, rig))
        turns, best_effort = model_calls(result)
        tally.work["model calls"] += len(turns) + len(best_effort)
        tally.work["tool attempts"] += sum(1 for e in result.events if e.kind is EventKind.TOOL_CALLED)
        tally.work["journal events"] += len(result.events)
        assert s.budget.timeout_s is not None
        tally.max_overshoot_s = max(tally.max_overshoot_s, elapsed_s - s.budget.timeout_s)
    return tally


def run_all(n: int, seed: int, workers: int) -> tuple[Tally, float]:
    """Run `n` scenarios over `workers` processes; the summed tally and the wall time."""
    started = time.perf_counter()
    total = Tally()
    chunks = [range(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]
    if workers <= 1:
        for chunk in chunks:
            total.add(run_batch(seed, chunk))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for tally in pool.map(run_batch, [seed] * len(chunks), chunks):
                total.add(tally)
    return total, time.perf_counter() - started


def summary(tally: Tally, wall_s: float, seed: int, workers: int) -> dict[str, Any]:
    """Everything the report prints, as plain data (``--json``)."""
    return {
        "runs": tally.runs,
        "seed": seed,
        "workers": workers,
        "wall_s": round(wall_s, 2),
        "runs_per_s": round(tally.runs / wall_s, 1) if wall_s else None,
        "statuses": dict(tally.statuses.most_common()),
        "runs_with": dict(tally.features.most_common()),
        "faults_injected": dict(sorted(tally.faults.items())),
        "work": dict(tally.work),
        "violations": {family: tally.violations[family] for family in FAMILIES},
        "first_violation": {family: {"run": i, "detail": detail} for family, (i, detail) in tally.examples.items()},
        "max_overshoot_s": round(tally.max_overshoot_s, 3),
        "versions": {"python": platform.python_version(), "keel-agents": version("keel-agents")},
        "machine": {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "platform": platform.platform()},
    }


def _share(count: int, runs: int) -> str:
    return f"{100 * count / runs:.1f}%" if runs else "—"


def print_table(data: dict[str, Any]) -> None:
    """The report: one table in sections, then throughput, the machine, and the first run of each violation."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    runs = data["runs"]
    table = Table(title=f"Chaos: {runs:,} randomized runs (seed {data['seed']})")
    table.add_column("section")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("share of runs", justify="right")
    final = [status.value for status in RunStatus if status is not RunStatus.RUNNING]
    for status in final + [s for s in data["statuses"] if s not in final]:  # "(no result)" only when it happened
        count = data["statuses"].get(status, 0)
        table.add_row("runs by status", status, f"{count:,}", _share(count, runs))
    table.add_section()
    for feature, count in data["runs_with"].items():
        table.add_row("runs with ≥ 1", escape(feature), f"{count:,}", _share(count, runs))
    table.add_section()
    for fault, count in data["faults_injected"].items():
        table.add_row("faults injected", escape(fault), f"{count:,}", "")
    table.add_section()
    for what, count in data["work"].items():
        table.add_row("work done", what, f"{count:,}", "")
    table.add_section()
    for family, count in data["violations"].items():
        style = "bold red" if count else "green"
        table.add_row("violations", family, f"[{style}]{count:,}[/]", _share(count, runs))
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(
        f"{runs:,} runs in {data['wall_s']:.1f} s on {data['workers']} worker process(es): "
        f"{data['runs_per_s']:,.0f} runs/s. Longest return past a run's timeout_s: {data['max_overshoot_s']:.3f} s."
    )
    versions, machine = data["versions"], data["machine"]
    console.print(
        f"Python {versions['python']}, keel-agents {versions['keel-agents']}; {machine['cpu']}, "
        f"{machine['logical_cores']} logical cores, {machine['platform']}",
        style="dim",
    )
    for family, first in data["first_violation"].items():
        console.print(
            f"[red]first {family} violation[/]: run {first['run']}: {escape(first['detail'])} "
            f"(replay: bench/chaos.py --seed {data['seed']} --replay {first['run']})"
        )


def replay(seed: int, index: int) -> int:
    """Run one scenario and print it in full: the scenario, its violations and its journal."""
    warm_up()
    s, result, found, _, elapsed_s = check_one(seed, index)
    print(s)
    status = "no result" if result is None else f"{result.status.value}: {result.report.reason}"
    print(f"\n{status} after {elapsed_s:.3f} s")
    print("violations:", *found or ["none"], sep="\n  ")
    print("\njournal:\n" + excerpt(result, limit=500))
    return 1 if found else 0


def main() -> int:
    """Parse the arguments, run the batch (or one replay), print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="how many randomized runs (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the whole batch (default 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    parser.add_argument("--replay", type=int, metavar="I", help="run only scenario I of --seed and print its journal")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.replay is not None:
        return replay(args.seed, args.replay)
    tally, wall_s = run_all(args.n, args.seed, max(1, args.workers))
    data = summary(tally, wall_s, args.seed, args.workers)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    return 1 if sum(tally.violations.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
