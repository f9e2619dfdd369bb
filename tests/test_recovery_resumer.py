"""A resumer is a run's owner like its first process: killed, it is recognised as dead; raced, one of them wins.

The agents are in tests/crash_agents.py (every tool invocation is appended to an effects file); the helpers that
start and kill them are in tests/test_recovery_crash.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from _crash_harness import Chaos, Tally, trial
from _processes import start_together
from crash_agents import desk
from keel import EventKind, ReviewQueue, RunStatus
from keel.recovery import ProcessOwner, find_interrupted
from keel.store import SQLiteStore
from test_recovery_crash import TESTS, _runs, effects, kill, killed_at, resume, wait_for


@pytest.fixture(autouse=True)
def _effects_of_this_process_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))


def start_resumer(db: Path, run_id: str, log: Path, hang_at: str) -> subprocess.Popen[str]:
    """Resume the run in a child process that blocks (to be killed) when it reaches `hang_at`."""
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import crash_agents; "
        f"crash_agents.resume_main({str(db)!r}, {run_id!r})"
    )
    env = {**os.environ, "KEEL_TEST_EFFECTS": str(log), "KEEL_TEST_HANG_AT": hang_at}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)


def owners(db: Path, run_id: str) -> list[ProcessOwner | None]:
    store = SQLiteStore(db)
    try:
        journal = asyncio.run(store.events(run_id))
    finally:
        store.close()
    return [ProcessOwner.from_payload(e.payload.get("owner")) for e in journal if e.kind is EventKind.RUN_STARTED]


def test_a_killed_resumer_of_an_approved_run_is_recognised_as_dead(tmp_path: Path) -> None:
    db, log, run_id = killed_at(tmp_path, "charge", "charge")
    paused, store = resume(db, run_id)
    try:
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        ReviewQueue(store).approve_sync(item.id, by="ops", note="the bank shows nothing")
    finally:
        store.close()

    resumer = start_resumer(db, run_id, log, hang_at="charge")  # the approved charge runs again, and hangs
    wait_for(lambda: Counter(e["tool"] for e in effects(log))["charge"] == 2, resumer, "the approved charge")
    kill(resumer)
    store = SQLiteStore(db)
    try:
        [found] = asyncio.run(find_interrupted(store))
    finally:
        store.close()
    assert found.alive is False and found.owner is not None and found.owner.pid == resumer.pid

    again, store = resume(db, run_id)  # no --force: the resumer's process is known to be gone
    try:
        assert again.status is RunStatus.ESCALATED, again.report.reason
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        assert "side effect may have happened" in item.reason
        ReviewQueue(store).deny_sync(item.id, by="ops", note="the bank shows the second charge")
        done = desk.with_store(store).resume_sync(run_id)
    finally:
        store.close()
    assert done.status is RunStatus.COMPLETED
    ran = Counter((e["tool"], e["order"]) for e in effects(log))
    assert ran[("charge", "A-2")] == 2, "once before the crash, once approved; never a third time unasked"
    assert ran[("pay", "A-3")] == 1
    assert [o.pid if o else None for o in owners(db, run_id)][2] == resumer.pid


def test_a_killed_resumer_of_an_interrupted_run_is_recognised_as_dead(tmp_path: Path) -> None:
    db, log, run_id = killed_at(tmp_path, "pay", "pay")
    resumer = start_resumer(db, run_id, log, hang_at="charge")
    wait_for(lambda: any(e["tool"] == "charge" for e in effects(log)), resumer, "the resumer to reach charge")
    kill(resumer)

    paused, store = resume(db, run_id)
    try:
        assert paused.status is RunStatus.ESCALATED  # the charge the resumer started may have happened
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        ReviewQueue(store).deny_sync(item.id, by="ops")
        done = desk.with_store(store).resume_sync(run_id)
    finally:
        store.close()
    assert done.status is RunStatus.COMPLETED
    ran = Counter((e["tool"], e["order"]) for e in effects(log))
    assert ran[("charge", "A-2")] == 1 and ran[("lookup", "A-1")] == 1 and ran[("pay", "A-3")] == 1
    keys = {e["key"] for e in effects(log) if (e["tool"], e["order"]) == ("pay", "A-1")}
    assert len(keys) == 1, "the payment issued again by the killed resumer carried the same key"


def concurrent_resumes(tmp_path: Path, db: Path, run_id: str, workers: int) -> list[str]:
    """Resume the run from `workers` processes released at once; each one's first output line."""
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import crash_agents; crash_agents.resume_main(*sys.argv[1:])"
    )
    barrier = tmp_path / "barrier"
    procs = start_together(script, barrier, workers, lambda w: [str(db), run_id, str(barrier), str(w)])
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        lines.append(out.decode().strip())
    return lines


@pytest.mark.parametrize("paused_by", ["crash", "review"])
def test_concurrent_resumes_of_one_run_resume_it_once(tmp_path: Path, paused_by: str) -> None:
    where = "pay" if paused_by == "crash" else "charge"
    db, log, run_id = killed_at(tmp_path, where, where)
    if paused_by == "review":
        paused, store = resume(db, run_id)
        try:
            [item] = ReviewQueue(store).pending_sync(run_id=run_id)
            ReviewQueue(store).deny_sync(item.id, by="ops")
        finally:
            store.close()
    before = Counter((e["tool"], e["order"]) for e in effects(log))

    lines = concurrent_resumes(tmp_path, db, run_id, workers=4)

    finished = [line for line in lines if line.endswith(" completed")]
    refused = [line for line in lines if line.startswith("refused")]
    assert len(finished) == 1 and len(refused) == 3, lines
    assert _runs(db)[0].status is RunStatus.COMPLETED
    after = Counter((e["tool"], e["order"]) for e in effects(log)) - before
    assert after[("pay", "A-3")] == 1, "the rest of the plan ran once, by the one resumer that won"
    assert after[("charge", "A-2")] == (1 if paused_by == "crash" else 0)


def test_random_kills_of_runs_and_resumers_duplicate_lose_or_strand_nothing(tmp_path: Path) -> None:
    # The small tier of bench/crash_resume.py (which runs a hundred trials): most resumers killed, one round in
    # two raced by three resumers.
    chaos = Chaos(p_kill_resumer=0.6, p_concurrent=0.5, kill_window_s=0.15)
    tally = Tally(runs=0)
    for i in range(3):
        tally.add(trial(tmp_path / f"t{i}", f"suite:{i}", chaos))
    assert (tally.duplicated, tally.lost, tally.unresumable, tally.resumed_more_than_once) == (0, 0, 0, 0), tally
    assert tally.runs == 3 and tally.kills >= 1 and tally.resumes >= tally.kills
