"""Crash-safe resume (E5): kill the process (SIGKILL) anywhere in a run; the run finishes from its journal.

Completed model and tool calls are never made again; a side effect started before the crash is issued again
only when that is safe (the tool takes the idempotency key, or is idempotent), and otherwise waits for a person.
The agents are in tests/crash_agents.py; each child process appends every tool invocation to an effects file.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crash_agents import PLAN, desk, lookup
from keel import Agent, Escalation, Event, EventKind, RetryPolicy, ReviewQueue, RunStatus, tool
from keel.cli.main import app
from keel.cost import SpendLedger
from keel.errors import ResumeError
from keel.recovery import ProcessOwner, find_interrupted
from keel.store import MemoryStore, RunRecord, SQLiteStore
from keel.testing import FunctionModel, reply

TESTS = Path(__file__).parent


def effects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start(tmp_path: Path, hang_at: str | None = None, **env: str) -> tuple[subprocess.Popen[str], Path, Path]:
    db, log = tmp_path / "keel.db", tmp_path / "effects.jsonl"
    extra = {"KEEL_TEST_EFFECTS": str(log), **({"KEEL_TEST_HANG_AT": hang_at} if hang_at else {}), **env}
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import crash_agents; crash_agents.main({str(db)!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, **extra}, stdout=subprocess.PIPE, text=True
    )
    return proc, db, log


def wait_for(condition, proc: subprocess.Popen[str], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()


def _runs(db: Path):
    store = SQLiteStore(db)
    try:
        return asyncio.run(store.list_runs(limit=10))
    finally:
        store.close()


def killed_at(tmp_path: Path, hang_at: str, started: str, **env: str) -> tuple[Path, Path, str]:
    """Run the plan in a child, kill it once `started` (a tool name, or "model"/"guard") has begun; the run id."""
    proc, db, log = start(tmp_path, hang_at, **env)
    if started in ("model", "guard"):
        marker = {"model": EventKind.BUDGET_RESERVED, "guard": EventKind.MODEL_CALLED}[started]
        wait_for(lambda: _last_kind(db) is marker and _answered(db) >= (2 if started == "model" else 5), proc, started)
        time.sleep(0.2)  # inside the call now
    else:
        wait_for(lambda: any(e["tool"] == started for e in effects(log)), proc, f"{started} to start")
    kill(proc)
    [run] = _runs(db)
    assert run.status is RunStatus.RUNNING
    return db, log, run.run_id


def _events(db: Path, run_id: str | None = None):
    if not db.exists():
        return []
    store = SQLiteStore(db)
    try:
        runs = asyncio.run(store.list_runs(limit=1))
        return asyncio.run(store.events(run_id or runs[0].run_id)) if runs else []
    finally:
        store.close()


def _last_kind(db: Path):
    events = _events(db)
    return events[-1].kind if events else None


def _answered(db: Path) -> int:
    return sum(e.kind is EventKind.TOOL_CALLED for e in _events(db))


@pytest.fixture(autouse=True)
def _effects_of_this_process_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resumed runs (in this process) record their effects in the same file as the killed child did."""
    monkeypatch.setenv("KEEL_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))


def resume(db: Path, run_id: str, **kwargs):
    store = SQLiteStore(db)
    try:
        return desk.with_store(store).resume_sync(run_id, **kwargs), store
    except BaseException:
        store.close()
        raise


def test_a_side_effect_that_cannot_be_deduplicated_waits_for_a_person_after_a_crash(tmp_path: Path) -> None:
    db, log, run_id = killed_at(tmp_path, "charge", "charge")
    store = SQLiteStore(db)
    [found] = asyncio.run(find_interrupted(store))
    assert found.run.run_id == run_id and found.alive is False and found.owner is not None
    store.close()

    paused, store = resume(db, run_id)
    try:
        assert paused.status is RunStatus.ESCALATED
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        assert item.action == "charge" and "side effect may have happened" in item.reason
        interrupted = [e.payload for e in paused.events if e.kind is EventKind.TOOL_CALLED]
        assert interrupted[-1]["outcome"] == "interrupted" and interrupted[-1]["tool"] == "charge"
        ReviewQueue(store).deny_sync(item.id, by="ops", note="the bank shows the charge")
        done = desk.with_store(store).resume_sync(run_id)
    finally:
        store.close()

    assert done.status is RunStatus.COMPLETED and done.output == "All orders handled."
    ran = Counter((e["tool"], e["order"]) for e in effects(log))
    assert ran[("charge", "A-2")] == 1, "the charge that may have happened was not repeated"
    assert ran[("lookup", "A-1")] == ran[("pay", "A-1")] == ran[("lookup", "A-2")] == 1, "nothing completed ran again"
    assert ran[("pay", "A-3")] == 1


def test_an_approved_repeat_of_an_interrupted_side_effect_runs_it_once_more(tmp_path: Path) -> None:
    db, log, run_id = killed_at(tmp_path, "charge", "charge")
    paused, store = resume(db, run_id)
    try:
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        ReviewQueue(store).approve_sync(item.id, by="ops", note="the bank shows nothing")
        done = desk.with_store(store).resume_sync(run_id)
    finally:
        store.close()
    assert done.status is RunStatus.COMPLETED
    assert Counter(e["tool"] for e in effects(log))["charge"] == 2


def test_a_call_that_takes_the_idempotency_key_is_issued_again_with_the_same_key(tmp_path: Path) -> None:
    db, log, run_id = killed_at(tmp_path, "pay", "pay")
    done, store = resume(db, run_id)
    store.close()

    assert done.status is RunStatus.COMPLETED
    first_pay = [e for e in effects(log) if (e["tool"], e["order"]) == ("pay", "A-1")]
    assert len(first_pay) == 2 and first_pay[0]["key"] == first_pay[1]["key"], "a deduplicating API sees one payment"
    assert first_pay[0]["pid"] != first_pay[1]["pid"]
    assert Counter(e["tool"] for e in effects(log))["lookup"] == 2  # A-1 before the crash, A-2 after: none twice


def test_a_model_call_in_flight_is_charged_at_its_worst_case_and_made_again(tmp_path: Path) -> None:
    db, _, run_id = killed_at(tmp_path, "model", "model")
    done, store = resume(db, run_id)
    try:
        lost = [e for e in done.events if e.kind is EventKind.MODEL_CALLED and e.payload.get("interrupted")]
        assert len(lost) == 1 and lost[0].cost_usd > 0 and "process died" in lost[0].payload["error"]
        totals = asyncio.run(SpendLedger(store).totals("agent:crash-desk", "day"))
    finally:
        store.close()
    assert done.status is RunStatus.COMPLETED
    assert done.usage.cost_usd == pytest.approx(sum(e.cost_usd for e in done.events))
    assert totals.reserved_usd == 0 and totals.spent_usd == pytest.approx(done.usage.cost_usd)


def test_an_answer_being_judged_is_judged_again_without_asking_the_model(tmp_path: Path) -> None:
    db, _, run_id = killed_at(tmp_path, "guard", "guard")
    calls_before = sum(e.kind is EventKind.MODEL_CALLED for e in _events(db, run_id))
    done, store = resume(db, run_id)
    store.close()
    assert done.status is RunStatus.COMPLETED and done.output == "All orders handled."
    assert sum(e.kind is EventKind.MODEL_CALLED for e in done.events) == calls_before


def test_a_live_run_is_not_taken_over_and_another_hosts_run_needs_force(tmp_path: Path) -> None:
    proc, db, log = start(tmp_path, "pay", KEEL_TEST_HOST="elsewhere.example")
    wait_for(lambda: any(e["tool"] == "pay" for e in effects(log)), proc, "pay to start")
    [run] = _runs(db)
    with pytest.raises(ResumeError, match="another host .*--force"):
        resume(db, run.run_id)
    kill(proc)
    done, store = resume(db, run.run_id, force=True)
    store.close()
    assert done.status is RunStatus.COMPLETED


def test_a_run_whose_process_is_alive_cannot_be_resumed(tmp_path: Path) -> None:
    proc, db, log = start(tmp_path, "pay")
    try:
        wait_for(lambda: any(e["tool"] == "pay" for e in effects(log)), proc, "pay to start")
        [run] = _runs(db)
        with pytest.raises(ResumeError, match=f"still running \\(pid {proc.pid}"):
            resume(db, run.run_id)
    finally:
        kill(proc)


def test_keel_runs_interrupted_lists_the_run_with_the_command_to_resume_it(tmp_path: Path) -> None:
    db, _, run_id = killed_at(tmp_path, "pay", "pay")
    result = CliRunner().invoke(app, ["runs", "--interrupted", "--store", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert run_id in result.output and f"keel resume {run_id}" in result.output and "dead" in result.output

    done, store = resume(db, run_id)
    store.close()
    again = CliRunner().invoke(app, ["runs", "--interrupted", "--store", str(db)])
    assert "no interrupted runs" in again.output


def test_a_journal_cut_short_mid_write_resumes_from_its_last_complete_event(tmp_path: Path) -> None:
    proc, db, _ = start(tmp_path, "exit")
    assert proc.stdout is not None and proc.stdout.readline().split()[1] == "completed"
    kill(proc)
    cut = tmp_path / "cut.db"
    shutil.copy(db, cut)
    wal = Path(f"{db}-wal")
    assert wal.exists(), "the journal's last writes are still in the write-ahead log"
    data = wal.read_bytes()
    Path(f"{cut}-wal").write_bytes(data[: len(data) - 3000])  # the last commit (run_finished) torn mid-write

    [run] = _runs(cut)
    assert run.status is RunStatus.RUNNING  # SQLite dropped the torn transaction whole: nothing half-written
    done, store = resume(cut, run.run_id)
    store.close()
    assert done.status is RunStatus.COMPLETED and done.output == "All orders handled."


def test_random_kills_never_repeat_a_side_effect_without_its_key_or_a_person(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    resumed = 0
    for trial in range(8):
        where = tmp_path / f"trial{trial}"
        where.mkdir()
        os.environ["KEEL_TEST_EFFECTS"] = str(where / "effects.jsonl")  # restored by the fixture's monkeypatch
        proc, db, log = start(where, KEEL_TEST_DELAY="0.03")
        wait_for(lambda db=db: bool(_events(db)), proc, "the run to start")
        time.sleep(rng.uniform(0, 0.3))  # the plan takes about 0.2 s: anywhere in it, or just after
        kill(proc)
        runs = _runs(db)
        run_id = runs[0].run_id
        resumed += runs[0].status is RunStatus.RUNNING
        store = SQLiteStore(db)
        try:
            result = desk.with_store(store).resume_sync(run_id) if runs[0].status is RunStatus.RUNNING else None
            for _ in range(3):  # bounded: each pause is a charge that may have happened; the person says no
                if result is None or result.status is not RunStatus.ESCALATED:
                    break
                for item in ReviewQueue(store).pending_sync(run_id=run_id):
                    ReviewQueue(store).deny_sync(item.id, by="ops")
                result = desk.with_store(store).resume_sync(run_id)
            final = _runs(db)[0]
        finally:
            store.close()
        assert final.status is RunStatus.COMPLETED, (trial, final.reason)
        ran = effects(log)
        for name, order in PLAN:
            if name == "charge":
                assert sum((e["tool"], e["order"]) == (name, order) for e in ran) <= 1, trial
            if name == "pay":
                keys = {e["key"] for e in ran if (e["tool"], e["order"]) == (name, order)}
                assert len(keys) == 1, (trial, order, keys)  # every issue of the payment carried one key
    assert resumed >= 4, "most kills landed mid-run"


# --- journals cut at exact points (written by hand: the state a SIGKILL leaves at that instant) ---------------


def dead_owner() -> dict:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return ProcessOwner(socket.gethostname(), int(finished.stdout)).as_payload()  # that pid has exited


def crashed_run(store: MemoryStore, agent: Agent, *payloads: tuple[EventKind, dict]) -> str:
    """A run of `agent` whose journal holds `payloads` after its run_started, left running by a dead process."""
    run_id = "run-crashed"
    started = {"agent": agent.name, "task": "go", "owner": dead_owner()}
    first = Event(run_id, 1, EventKind.RUN_STARTED, payload=started)
    asyncio.run(store.create_run(RunRecord(run_id, agent.name, "go", agent.model.name, started_at=time.time()), first))
    for seq, (kind, payload) in enumerate(payloads, start=2):
        asyncio.run(store.append(Event(run_id, seq, kind, payload=payload)))
    return run_id


def turn(*calls: tuple[str, str, dict]) -> tuple[EventKind, dict]:
    tool_calls = [{"id": i, "name": n, "arguments": json.dumps(a)} for i, n, a in calls]
    return EventKind.MODEL_CALLED, {"model": "test:function", "step": 1, "text": None, "tool_calls": tool_calls}


wires: list[str] = []


@tool(severity="high", side_effects=True, trusted=True)
def wire(amount: float) -> str:
    """Wire money (needs a person's approval under Escalation(severity="high"))."""
    wires.append(f"wire {amount}")
    return "wired"


def test_a_turn_cut_off_before_its_approval_asks_for_it_again() -> None:
    wires.clear()
    model = FunctionModel(lambda request: reply("done"))
    agent = Agent("bank", model, tools=[wire], escalation=Escalation(severity="high"), store=MemoryStore(), guards=[])
    run_id = crashed_run(agent.store, agent, turn(("c1", "wire", {"amount": 1000})))  # died while holding it

    result = agent.resume_sync(run_id)
    assert result.status is RunStatus.ESCALATED and wires == [], "an unapproved high-severity call never runs"


def test_a_retry_attempt_in_flight_is_interrupted_and_goes_to_a_person() -> None:
    shipped: list[str] = []

    @tool(side_effects=True, severity="low", trusted=True, retry=RetryPolicy(max_attempts=3, initial_delay_s=0))
    def ship(order_id: str) -> str:
        """Ship an order (no idempotency key: a repeat ships twice)."""
        shipped.append(order_id)
        return "shipped"

    agent = Agent("shop", FunctionModel(lambda r: reply("ok")), tools=[ship], store=MemoryStore(), guards=[])
    started = {"stage": "tool_started", "call_id": "c1", "tool": "ship"}
    failed = {
        "call_id": "c1",
        "tool": "ship",
        "arguments": {"order_id": "1"},
        "outcome": "error",
        "attempt": 1,
        "result": None,
        "error": "Tool 'ship' failed: ConnectionError: reset",
        "ordinal": 0,
    }
    run_id = crashed_run(
        agent.store,
        agent,
        turn(("c1", "ship", {"order_id": "1"})),
        (EventKind.CHECKPOINT, {**started, "attempt": 1}),
        (EventKind.TOOL_CALLED, failed),
        (EventKind.RETRY_SCHEDULED, {"call_id": "c1", "tool": "ship", "attempt": 2, "delay_s": 0.0}),
        (EventKind.CHECKPOINT, {**started, "attempt": 2}),  # the second attempt was running when it died
    )
    result = agent.resume_sync(run_id)
    assert result.status is RunStatus.ESCALATED and shipped == []
    [item] = ReviewQueue(agent.store).pending_sync(run_id=run_id)
    assert "side effect may have happened" in item.reason


def test_a_decided_stop_stands_when_the_process_died_during_the_best_effort_answer() -> None:
    answers = FunctionModel(lambda request: reply("Best I can say: order 1 is open." if not request.tools else "?"))
    agent = Agent("desk", answers, tools=[lookup], store=MemoryStore(), guards=[])
    result_1 = {
        "call_id": "c1",
        "tool": "lookup",
        "arguments": {"order_id": "1"},
        "outcome": "ok",
        "attempt": 1,
        "result": "order 1: open",
        "error": None,
        "ordinal": 0,
    }
    run_id = crashed_run(
        agent.store,
        agent,
        turn(("c1", "lookup", {"order_id": "1"})),
        (EventKind.TOOL_CALLED, result_1),
        (EventKind.LOOP_DETECTED, {"action": "break", "kind": "repeat"}),
        (EventKind.CHECKPOINT, {"stage": "stopping", "reason": "loop detected: the same tool calls returned ..."}),
    )
    result = agent.resume_sync(run_id)
    assert result.status is RunStatus.PARTIAL and result.report.reason.startswith("loop detected")
    assert result.output == "Best I can say: order 1 is open."
    assert all(not r.tools for r in answers.requests), "no ordinary turn after the decided stop"
