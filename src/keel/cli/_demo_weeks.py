"""``keel demo``'s replays: each week's failure happens again, on screen, and Keel stops it; then what Keel did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from keel.demo.support import SupportDesk
from keel.demo.weeks import Week, week_four, week_one, week_three, week_two
from keel.guardrails.review import ReviewQueue
from keel.journal import EventKind
from keel.result import RunResult
from keel.store.base import Store

from ._common import run_async
from ._progress import observed, observed_run
from ._render import call_text, money

__all__ = ["SCRIPTED_WEEKS", "Tally", "replay_weeks"]

SCRIPTED_WEEKS = (
    "Weeks 1–4 replay the article's production failures with models scripted to misbehave "
    "(keel.testing.ScriptedModel): their words are canned. The tools, budgets, limits, loop detector, review queue "
    "and journal are Keel's own, and real."
)


@dataclass
class Tally:
    """What the demo's runs add up to, for its closing lines."""

    runs: list[RunResult] = field(default_factory=list)
    stopped: Counter[str] = field(default_factory=Counter)

    def add(self, result: RunResult) -> None:
        """Count a run and what Keel stopped in it."""
        self.runs.append(result)
        for event in result.events:
            if event.kind is EventKind.TOOL_REJECTED:
                self.stopped["hallucinated tool calls rejected"] += 1
            elif event.kind is EventKind.LOOP_DETECTED and event.payload.get("action") != "nudge":
                self.stopped["loops broken"] += 1
            elif event.kind is EventKind.BUDGET_REFUSED:
                self.stopped["calls refused before the money was spent"] += 1
            elif event.kind is EventKind.ESCALATED:
                self.stopped["actions held for a person"] += 1

    def summary(self) -> str:
        """What was stopped, in words: ``3 hallucinated tool calls rejected · 1 loop broken``."""
        parts = []
        for what, n in self.stopped.items():
            parts.append(f"{n} {what}" if n != 1 else f"1 {what.replace('calls', 'call').replace('loops', 'loop')}")
        return " · ".join(parts).replace("1 actions", "1 action") or "nothing"


def _header(console: Console, week: Week) -> None:
    body = Text.assemble(("In production: ", "bold"), week.story, "\n", ("Replay: ", "bold"),
                         f"{week.agent.name} on {week.agent.model.name} (scripted) · task: {week.task}")  # fmt: skip
    console.print()
    console.print(Panel(body, title=week.title, title_align="left", border_style="magenta"))


def _said(console: Console, *lines: str) -> None:
    for line in lines:
        console.print(Text.assemble(("Keel: ", "bold green"), line))


def _week_one(console: Console, week: Week, store: Store) -> RunResult:
    result = run_async(observed_run(week.agent, week.task, session_id=week.session_id, store=store, console=console))
    rejected = [e for e in result.events if e.kind is EventKind.TOOL_REJECTED]
    _said(
        console,
        f"{len(rejected)} calls to {rejected[0].payload['tool']!r} rejected against the agent's tools before anything "
        "ran; each time the model was told which tools exist.",
        f"bounded at max_tool_rejections=3: the run ended {result.status} — {result.report.reason}",
    )
    return result


def _week_two(console: Console, week: Week, store: Store) -> RunResult:
    result = run_async(observed_run(week.agent, week.task, session_id=week.session_id, store=store, console=console))
    loops = [e.payload for e in result.events if e.kind is EventKind.LOOP_DETECTED]
    steps = sum(1 for e in result.events if e.kind is EventKind.MODEL_CALLED)
    lines = [f"the plan had 47 steps; the run took {steps} model calls, then stopped: {result.report.reason}"]
    if loops:
        lines.append(f"loop detector: {', '.join(str(p.get('action')) for p in loops)} (the same state came back)")
    lines.append(f"a best-effort answer from what was done: {str(result.output)[:100]}…")
    _said(console, *lines)
    return result


def _week_three(console: Console, week: Week, store: Store) -> list[RunResult]:
    results = []
    for attempt in (1, 2):  # the same expensive request twice: the budget stops one, the hourly limit the next
        results.append(
            run_async(observed_run(week.agent, week.task, session_id=week.session_id, store=store, console=console))
        )
        refused = [e.payload for e in results[-1].events if e.kind is EventKind.BUDGET_REFUSED]
        what = _limit_words(refused[0]) if refused else "nothing"
        spent = results[-1].usage.cost_usd
        which = "its next call" if spent else "its first call"
        _said(console, f"request {attempt}: spent {money(spent)}, then {which} was refused by {what} — before the "
                       "call, not after the invoice")  # fmt: skip
    spent = sum(r.usage.cost_usd for r in results)
    _said(console, f"both requests together: {money(spent)} spent, where the model's calls would have cost "
                   f"{money(2 * week.would_cost_usd)}")  # fmt: skip
    return results


def _limit_words(refused: dict[str, object]) -> str:
    if "key" in refused:
        return f"the hourly spending limit ({refused.get('limit')}={refused.get('ceiling')} for this session)"
    return f"the request's budget ({refused.get('limit')})"


def _week_four(console: Console, week: Week, store: Store, desk: SupportDesk) -> RunResult:
    paused = run_async(observed_run(week.agent, week.task, session_id=week.session_id, store=store, console=console))
    (item,) = run_async(ReviewQueue(store).pending(run_id=paused.run_id))
    _said(
        console,
        f"the lookups ran; only the high-severity action waits for a person: review item {item.id}, "
        f"{call_text(item.action, item.arguments)} — {item.reason}",
        f"approving it as a person would (the same as `keel review approve {item.id} --by demo-operator`)",
    )
    run_async(ReviewQueue(store).approve(item.id, by="demo-operator", note="customer asked; amount checked"))
    resumed = run_async(
        observed(week.agent, lambda watched: watched.resume(paused.run_id), store=store, console=console)
    )
    issued = len(desk.refunds)
    _said(console, f"resumed: {resumed.status} — the refund ran exactly once ({issued} refund issued)")
    return resumed  # the resumed run's journal holds the paused part too


def replay_weeks(console: Console, store: Store, session_id: str) -> Tally:
    """Replay the four weeks on `store`; what they add up to."""
    tally = Tally()
    console.print(Text(SCRIPTED_WEEKS, style="yellow"))
    desk = SupportDesk.load()
    week = week_one(desk, store, session_id)
    _header(console, week)
    tally.add(_week_one(console, week, store))
    week = week_two(desk, store, session_id)
    _header(console, week)
    tally.add(_week_two(console, week, store))
    week = week_three(desk, store, session_id)
    _header(console, week)
    for result in _week_three(console, week, store):
        tally.add(result)
    week = week_four(desk, store, session_id)
    _header(console, week)
    tally.add(_week_four(console, week, store, desk))
    return tally
