"""Spending limits in runs: every model call reserves its worst case under the agent's limits first (G2)."""

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest

from _processes import start_together
from keel import Agent, Budget, Event, EventKind, RunStatus, SpendLimit, tool
from keel.cost import Reservation, SpendLedger
from keel.cost.ledger import entry_id_for
from keel.errors import ConfigError
from keel.recovery import ProcessOwner
from keel.store import MemoryStore, RunRecord, SQLiteStore
from keel.testing import ScriptedModel, call, fail, reply

PRICE = (1000.0, 1000.0)  # USD per million tokens: a tenth of a cent per token, so limits bite quickly


def agent(store, limits, *, script=None, **kwargs) -> Agent:
    model = ScriptedModel(script or [reply("ok")], usage=(100, 20), price=PRICE)
    return Agent("desk", model, store=store, limits=limits, max_output_tokens=50, **kwargs)


def kinds(result) -> list[EventKind]:
    return [e.kind for e in result.events]


async def test_runs_stop_at_the_hourly_ceiling_with_a_partial_result_naming_the_limit() -> None:
    store = MemoryStore()
    limit = SpendLimit(per_hour_usd=0.5)
    results = [await agent(store, [limit]).run(f"task {i}") for i in range(8)]

    statuses = [r.status for r in results]
    first_refused = statuses.index(RunStatus.PARTIAL)
    assert first_refused >= 1 and set(statuses[:first_refused]) == {RunStatus.COMPLETED}
    refused = results[first_refused]
    assert "per_hour_usd=0.5 (agent:desk) would be crossed" in refused.report.reason
    assert EventKind.BUDGET_REFUSED in kinds(refused) and EventKind.MODEL_CALLED not in kinds(refused)
    spent = sum(r.usage.cost_usd for r in results)
    assert spent <= 0.5
    totals = await SpendLedger(store).totals("agent:desk", "hour")
    assert totals.spent_usd == pytest.approx(spent) and totals.reserved_usd == 0


async def test_every_call_is_reserved_before_it_is_made_and_settled_at_its_real_cost() -> None:
    store = MemoryStore()
    result = await agent(store, [SpendLimit(per_day_usd=10)]).run("task")

    sequence = [k for k in kinds(result) if k in (EventKind.BUDGET_RESERVED, EventKind.MODEL_CALLED)]
    assert sequence == [EventKind.BUDGET_RESERVED, EventKind.MODEL_CALLED]
    reserved = next(e for e in result.events if e.kind is EventKind.BUDGET_RESERVED).payload
    assert reserved["keys"] == ["agent:desk"] and reserved["usd"] >= result.usage.cost_usd
    totals = await SpendLedger(store).totals("agent:desk", "day")
    assert totals.spent_usd == pytest.approx(result.usage.cost_usd)


async def test_a_failed_call_releases_its_reservation() -> None:
    store = MemoryStore()
    result = await agent(store, [SpendLimit(per_hour_usd=1)], script=[fail("provider down")]).run("task")

    assert result.status is RunStatus.FAILED
    totals = await SpendLedger(store).totals("agent:desk", "hour")
    assert (totals.spent_usd, totals.reserved_usd) == (0, 0)


async def test_a_user_limit_counts_each_user_apart_and_skips_runs_without_one() -> None:
    store = MemoryStore()
    limit = SpendLimit(per_hour_tokens=300, scope="user")
    alice = [await agent(store, [limit]).run("t", user="alice") for _ in range(4)]
    bob = await agent(store, [limit]).run("t", user="bob")
    anonymous = [await agent(store, [limit]).run("t") for _ in range(4)]

    assert RunStatus.PARTIAL in [r.status for r in alice]
    assert "per_hour_tokens=300 (user:alice)" in next(r for r in alice if not r.ok).report.reason
    assert bob.status is RunStatus.COMPLETED
    assert all(r.status is RunStatus.COMPLETED for r in anonymous)  # no user: a user limit does not apply


async def test_concurrent_runs_on_one_sqlite_store_never_cross_the_ceiling(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    limit = SpendLimit(per_hour_usd=1.0, scope="global")
    try:
        results = await asyncio.gather(*(agent(store, [limit]).run(f"task {i}") for i in range(40)))
    finally:
        store.close()

    assert sum(r.usage.cost_usd for r in results) <= 1.0
    assert {r.status for r in results} == {RunStatus.COMPLETED, RunStatus.PARTIAL}


def test_limits_must_be_spend_limits() -> None:
    with pytest.raises(ConfigError, match="SpendLimit"):
        Agent("desk", ScriptedModel([reply("ok")]), limits=[{"per_hour_usd": 5}], store=MemoryStore())
    with pytest.raises(ConfigError):
        SpendLimit(per_hour_usd=-1)
    with pytest.raises(ConfigError):
        SpendLimit(per_hour_usd=5, scope="planet")


calls_made: list[str] = []


@tool(cost_usd=0.25)
def paid_lookup(query: str) -> str:
    """Look something up in a paid API."""
    calls_made.append(query)
    return f"result for {query}"


async def test_paid_tool_calls_count_against_the_budget_and_stop_before_crossing_it() -> None:
    calls_made.clear()
    script = ScriptedModel(
        [call("paid_lookup", query="a"), call("paid_lookup", query="b"), call("paid_lookup", query="c"), reply("ok")]
    )
    result = await Agent(
        "desk", script, tools=[paid_lookup], store=MemoryStore(), budget=Budget(max_cost_usd=0.6), guards=[]
    ).run("look up a, b and c")

    assert result.status is RunStatus.PARTIAL and "max_cost_usd=0.6" in result.report.reason
    assert calls_made == ["a", "b"]  # the third call was refused before it reached the paid API
    assert result.usage.cost_usd == pytest.approx(0.5)
    paid = [e for e in result.events if e.kind is EventKind.TOOL_CALLED]
    assert [e.cost_usd for e in paid] == [0.25, 0.25]


async def test_paid_tool_calls_are_held_and_settled_under_spending_limits() -> None:
    calls_made.clear()
    store = MemoryStore()
    script = ScriptedModel([call("paid_lookup", query="a"), reply("ok")])
    limit = SpendLimit(per_day_usd=1.0)
    result = await Agent("desk", script, tools=[paid_lookup], store=store, limits=[limit], guards=[]).run("a")

    assert result.status is RunStatus.COMPLETED
    totals = await SpendLedger(store).totals("agent:desk", "day")
    assert totals.spent_usd == pytest.approx(0.25) and totals.reserved_usd == 0


RUNNER = """
import asyncio, json, sys, time
from pathlib import Path
from keel import Agent, SpendLimit, tool
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, reply

path, worker, runs, barrier, ceiling = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5])

@tool(trusted=True)
def lookup(order_id: str) -> str:
    \"\"\"Look an order up.\"\"\"
    return f"order {order_id} shipped"

async def main() -> None:
    store = SQLiteStore(path)
    limit = SpendLimit(per_hour_usd=ceiling, scope="global")
    agents = [
        Agent("desk", ScriptedModel([call("lookup", order_id=str(i)), reply("shipped")], usage=(100, 20),
              price=(1000.0, 1000.0)), tools=[lookup], store=store, limits=[limit], max_output_tokens=50)
        for i in range(runs)
    ]
    (barrier / f"ready-{worker}").touch()
    while not (barrier / "go").exists():
        await asyncio.sleep(0.005)
    results = await asyncio.gather(*(a.run(f"where is order {i}?") for i, a in enumerate(agents)))
    store.close()
    print(json.dumps([[r.status.value, r.usage.cost_usd, r.report.reason] for r in results]))

asyncio.run(main())
"""


def test_agent_runs_in_four_processes_never_cross_one_ceiling_together(tmp_path) -> None:
    """4 OS processes x 75 concurrent runs (two priced model calls each) share one global ceiling on one file."""
    path, barrier = tmp_path / "shared.db", tmp_path / "barrier"
    SQLiteStore(path).close()
    ceiling, workers, runs = 20.0, 4, 75  # each run costs 0.24 USD: 300 runs would want 72 USD

    def argv(w: int) -> list[str]:
        return [str(path), str(w), str(runs), str(barrier), str(ceiling)]

    procs = start_together(RUNNER, barrier, workers, argv)
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
        results.extend(json.loads(out))

    assert len(results) == workers * runs
    statuses = {status for status, _, _ in results}
    assert statuses == {"completed", "partial"}, statuses
    refused = [reason for status, _, reason in results if status == "partial"]
    assert all("per_hour_usd=20 (global) would be crossed" in reason for reason in refused), refused[:3]
    spent = sum(cost for _, cost, _ in results)
    assert spent <= ceiling, f"{spent} USD spent by the runs against a {ceiling} USD ceiling"
    assert spent > ceiling * 0.75, "the limit let spend through up to near its ceiling"
    with closing(sqlite3.connect(path)) as conn:
        ((runs_total, rows),) = conn.execute("SELECT SUM(cost_usd), COUNT(*) FROM runs").fetchall()
        ((ledger_nano, live),) = conn.execute(
            "SELECT SUM(CASE WHEN expires_at IS NULL THEN nano_usd END), COUNT(expires_at) FROM spend"
        ).fetchall()
    assert rows == workers * runs and runs_total == pytest.approx(spent)
    assert ledger_nano / 1e9 == pytest.approx(spent), "the ledger holds exactly what the runs spent"
    assert live == 0, "every reservation was settled or released"


def _dead_owner() -> dict:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return ProcessOwner(socket.gethostname(), int(finished.stdout)).as_payload()  # that pid has exited


async def test_a_hold_its_process_died_before_journaling_is_given_back_when_the_run_resumes() -> None:
    """Found by bench/attack.py: a SIGKILL between the ledger's commit and the journal's left headroom held for the
    reservation's whole TTL (10 minutes by default), although no call was ever made under it."""
    store, limit = MemoryStore(), SpendLimit(per_hour_usd=1.0)
    desk = agent(store, [limit])
    started = {"agent": "desk", "task": "go", "owner": _dead_owner()}
    run = RunRecord("run-dead", "desk", "go", desk.model.name, started_at=time.time())
    await store.create_run(run, Event("run-dead", 1, EventKind.RUN_STARTED, payload=started))
    # What the dead process did last: the ledger committed its hold; the budget_reserved event (seq 2) never came.
    ledger = SpendLedger(store)
    held = await ledger.reserve(
        "run-dead", [(limit, "agent:desk")], 0.9, 0, ttl_s=600, entry_id=entry_id_for("run-dead", 2)
    )
    assert isinstance(held, Reservation)

    result = await desk.resume("run-dead")

    assert result.status is RunStatus.COMPLETED, result.report.reason  # the 0.9 USD held was free again
    totals = await ledger.totals("agent:desk", "hour")
    assert totals.reserved_usd == 0 and totals.spent_usd == pytest.approx(result.usage.cost_usd)


async def test_a_call_journaled_but_not_settled_when_its_process_died_is_settled_at_its_cost_on_resume() -> None:
    """Found by bench/attack.py: the ledger was settled before the journal recorded the call, so a SIGKILL in
    between made resume charge the worst case again, past the ceiling; written the other way round, a journaled
    call whose hold was never settled must be settled at what the journal says it cost."""
    store, limit = MemoryStore(), SpendLimit(per_hour_usd=1.0)
    desk = agent(store, [limit])
    started = {"agent": "desk", "task": "go", "owner": _dead_owner()}
    run = RunRecord("run-dead", "desk", "go", desk.model.name, started_at=time.time())
    await store.create_run(run, Event("run-dead", 1, EventKind.RUN_STARTED, payload=started))
    ledger, entry = SpendLedger(store), entry_id_for("run-dead", 2)
    held = await ledger.reserve("run-dead", [(limit, "agent:desk")], 0.5, 500, ttl_s=600, entry_id=entry)
    assert isinstance(held, Reservation)
    reserved = {"entry_id": entry, "keys": ["agent:desk"], "usd": 0.5, "tokens": 500, "ttl_s": 600}
    await store.append(Event("run-dead", 2, EventKind.BUDGET_RESERVED, payload=reserved))
    answer = {"model": desk.model.name, "step": 1, "text": "ok", "tool_calls": []}
    await store.append(
        Event("run-dead", 3, EventKind.MODEL_CALLED, payload=answer, tokens_in=100, tokens_out=20, cost_usd=0.12)
    )

    result = await desk.resume("run-dead")

    totals = await ledger.totals("agent:desk", "hour")
    assert totals.reserved_usd == 0, "the journaled call's hold was settled, not left to expire"
    assert totals.spent_usd == pytest.approx(result.usage.cost_usd) and totals.spent_usd < 0.5
