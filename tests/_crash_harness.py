"""Kill runs and their resumers at random (SIGKILL), resume until done, and count the side effects outside Keel.

One trial runs the plan of tests/crash_agents.py in a child process, kills it at a random moment, then resumes
it in child processes — some of them killed at random too, some started several at once — until the run is
completed. When a resumed run pauses on a side effect that may have happened, the "person" looks at the effects
file (the bank statement) and approves a repeat only when the effect is not there. The effects file is written by
the tools themselves (fsynced before they go on), so it counts what happened outside Keel:

- duplicated: a payment issued under more than one idempotency key (a deduplicating API would pay twice), or a
  charge (no key: it cannot be deduplicated) made more than once;
- lost: a completed run whose payment or charge never happened;
- unresumable: a resume refused although the run's process (or resumer) was dead, a resumer that crashed, or a
  run not completed within the trial's bounded rounds;
- resumed more than once: two resumers racing for one run that both went on (the claim must let exactly one).

Used by tests/test_recovery_resumer.py (a few trials) and bench/crash_resume.py (a hundred or more).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

from keel import EventKind, ReviewQueue, RunStatus
from keel.store import SQLiteStore

TESTS = Path(__file__).resolve().parent
_PREAMBLE = (  # the tokenizer loaded first: else a run's first model call waits half a second for it, off the plan
    f"import sys; sys.path.insert(0, {str(TESTS)!r}); import crash_agents; "
    "from keel.models.tokens import count_text_tokens; count_text_tokens('warm up'); "
)
_DEADLINE_S = 60.0
"""The longest any one child may take: a plan takes well under a second, so this only stops a hang."""


@dataclass
class Tally:
    """What the trials did and how many times a guarantee broke (the last four must stay 0)."""

    runs: int = 0
    kills: int = 0
    """First processes killed before their run finished."""
    resumes: int = 0
    killed_resumes: int = 0
    concurrent_rounds: int = 0
    """Rounds where several resumers were started at once."""
    approvals: int = 0
    denials: int = 0
    duplicated: int = 0
    lost: int = 0
    unresumable: int = 0
    resumed_more_than_once: int = 0

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def broken(self) -> int:
        """Guarantees broken in all."""
        return self.duplicated + self.lost + self.unresumable + self.resumed_more_than_once


@dataclass(frozen=True)
class Chaos:
    """How a trial is drawn."""

    p_kill_resumer: float = 0.5
    """The chance that a resumer is killed too."""
    p_concurrent: float = 0.2
    """The chance that a round starts `resumers` at once instead of one."""
    resumers: int = 3
    kill_window_s: float = 0.25
    """Kills land uniformly in this window after the run (or a resumer's claim) is seen."""
    tool_delay_s: float = 0.03
    """How long each tool call takes: the plan's five calls span about the kill window."""
    max_rounds: int = 12
    """Resume rounds before the run counts as unresumable."""


class Trial:
    """One run of the plan in its own directory (store and effects file)."""

    def __init__(self, where: Path, rng: random.Random, chaos: Chaos) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.db, self.log, self.where = where / "keel.db", where / "effects.jsonl", where
        self.rng, self.chaos, self.tally = rng, chaos, Tally(runs=1)
        self.env = {**os.environ, "KEEL_TEST_EFFECTS": str(self.log), "KEEL_TEST_DELAY": str(chaos.tool_delay_s)}
        self.env.pop("KEEL_TEST_HANG_AT", None)
        self.run_id = ""

    def run(self) -> Tally:
        """Start, kill, resume until completed (bounded); then count the effects."""
        first = self._spawn(f"crash_agents.main({str(self.db)!r})")
        if not self._wait(lambda: bool(self._started()), first):
            self.tally.unresumable += 1  # the run never started: nothing to count
            return self.tally
        self.run_id = self._run_id()
        self.tally.kills += self._kill_later(first)
        for _ in range(self.chaos.max_rounds):  # bounded: each round decides the reviews, then resumes
            status = self._status()
            if status is RunStatus.COMPLETED:
                break
            if status is RunStatus.ESCALATED:
                self._decide()
            if not self._resume_round():
                break
        if self._status() is not RunStatus.COMPLETED:
            self.tally.unresumable = 1  # refused, crashed, or out of rounds
        self._count_effects()
        return self.tally

    # --- processes --------------------------------------------------------------------------------------

    def _spawn(self, call: str, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", _PREAMBLE + call, *argv],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _wait(self, condition, proc: subprocess.Popen[str], within_s: float = _DEADLINE_S) -> bool:
        """Poll until `condition` holds (True) or `proc` exits or `within_s` passes (False)."""
        deadline = time.monotonic() + within_s
        while not condition():
            if proc.poll() is not None or time.monotonic() > deadline:
                return bool(condition())
            time.sleep(0.005)
        return True

    def _kill_later(self, proc: subprocess.Popen[str]) -> int:
        """Kill `proc` at a random moment of the window; 1 if it was still running then."""
        self._wait(lambda: False, proc, within_s=self.rng.uniform(0, self.chaos.kill_window_s))
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        self._reap(proc)
        return int(killed)

    def _reap(self, proc: subprocess.Popen[str]) -> tuple[str, str]:
        try:
            out, err = proc.communicate(timeout=_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return out, err

    def _resume_round(self) -> bool:
        """Resume with one process (or several at once); False when the run cannot go on."""
        together = self.rng.random() < self.chaos.p_concurrent
        count = self.chaos.resumers if together else 1
        self.tally.concurrent_rounds += together
        claims = len(self._started())
        barrier = self.where / f"barrier-{time.monotonic_ns()}"
        barrier.mkdir()
        procs = [
            self._spawn("crash_agents.resume_main(*sys.argv[1:])", str(self.db), self.run_id, str(barrier), str(w))
            for w in range(count)
        ]
        self._wait(lambda: len(list(barrier.glob("ready-*"))) == count or any(p.poll() is not None for p in procs),
                   procs[0])  # fmt: skip
        (barrier / "go").touch()
        self.tally.resumes += count
        killing = self.rng.random() < self.chaos.p_kill_resumer
        if killing:
            self._wait(lambda: len(self._started()) > claims, procs[0])
            self.tally.killed_resumes += self._kill_later(procs[0])
        outputs = [self._reap(p) for p in procs]
        went_on = [out for (out, _), p in zip(outputs, procs, strict=True) if p.returncode == 0 and out.strip()
                   and not out.startswith("refused")]  # fmt: skip
        refused = [out for out, _ in outputs if out.startswith("refused")]
        crashed = [err for (_, err), p in zip(outputs, procs, strict=True) if p.returncode not in (0, -signal.SIGKILL)]
        if len(went_on) > 1:
            self.tally.resumed_more_than_once += 1
        if crashed or (refused and not went_on and not (killing and len(self._started()) > claims)):
            # Every resumer refused, none killed after its claim: the run was left unresumable.
            self.tally.unresumable += 1
            return False
        return True

    # --- the store ----------------------------------------------------------------------------------------

    def _store(self) -> SQLiteStore:
        return SQLiteStore(self.db)

    def _started(self) -> list[int]:
        """The seqs of the run's `run_started` events (one per segment)."""
        if not self.db.exists():
            return []
        store = self._store()
        try:
            runs = asyncio.run(store.list_runs(limit=1))
            events = asyncio.run(store.events(runs[0].run_id)) if runs else []
        except Exception:  # the child is creating the store right now
            return []
        finally:
            store.close()
        return [e.seq for e in events if e.kind is EventKind.RUN_STARTED]

    def _run_id(self) -> str:
        store = self._store()
        try:
            return asyncio.run(store.list_runs(limit=1))[0].run_id
        finally:
            store.close()

    def _status(self) -> RunStatus:
        store = self._store()
        try:
            return asyncio.run(store.get_run(self.run_id)).status
        finally:
            store.close()

    def _decide(self) -> None:
        """The person: a charge that may have happened is approved again only if the bank does not show it."""
        store = self._store()
        try:
            queue = ReviewQueue(store)
            for item in queue.pending_sync(run_id=self.run_id):
                order = item.arguments.get("order_id")
                happened = any(e["tool"] == item.action and e["order"] == order for e in self._effects())
                if happened:
                    queue.deny_sync(item.id, by="bench", note="the statement shows it")
                    self.tally.denials += 1
                else:
                    queue.approve_sync(item.id, by="bench", note="the statement does not show it")
                    self.tally.approvals += 1
        finally:
            store.close()

    # --- the effects outside Keel -------------------------------------------------------------------------

    def _effects(self) -> list[dict[str, str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def _count_effects(self) -> None:
        effects = self._effects()
        completed = self._status() is RunStatus.COMPLETED
        keys: dict[str, set[str]] = {}
        charges: Counter[str] = Counter()
        for effect in effects:
            if effect["tool"] == "pay":
                keys.setdefault(effect["order"], set()).add(effect["key"])
            elif effect["tool"] == "charge":
                charges[effect["order"]] += 1
        for order in ("A-1", "A-3"):
            self.tally.duplicated += max(0, len(keys.get(order, ())) - 1)
            self.tally.lost += completed and not keys.get(order)
        self.tally.duplicated += max(0, charges["A-2"] - 1)
        self.tally.lost += completed and charges["A-2"] == 0


def trial(where: Path, seed: str, chaos: Chaos | None = None) -> Tally:
    """Run trial `seed` in `where` (its store and effects file)."""
    return Trial(where, random.Random(seed), chaos or Chaos()).run()
