"""Rollups: the per-minute counters a store keeps with the journal, for the dashboard and /metrics."""

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from dashboard_agents import lookup_order, populate
from keel import Agent, Budget
from keel.journal import Event, EventKind
from keel.store import MemoryStore, SQLiteStore
from keel.store._migrations import MIGRATIONS
from keel.store.base import RunRecord
from keel.store.rollups import RollupRow, bucket_label, increments, quantile, resolution
from keel.testing import ScriptedModel, call, fail, reply


def _totals(rows: list[RollupRow]) -> Counter[tuple[str, str, str, str]]:
    found: Counter[tuple[str, str, str, str]] = Counter()
    for row in rows:
        found[(row.agent, row.metric, row.label1, row.label2)] += row.n
    return found


async def test_sqlite_and_memory_stores_count_the_same_runs_the_same_way(tmp_path: Path) -> None:
    await populate(f"sqlite:///{tmp_path / 'keel.db'}", rounds=2)
    sqlite = SQLiteStore(tmp_path / "keel.db")
    memory = MemoryStore()
    for run in await sqlite.list_runs(limit=100):  # replay every journal into a memory store
        events = await sqlite.events(run.run_id)
        await memory.create_run(run, events[0])
        for event in events[1:]:
            await memory.append(event)
    counted = _totals(await sqlite.rollups(bucket_s=0))
    assert counted == _totals(await memory.rollups(bucket_s=0))
    assert counted[("support", "runs_started", "", "")] == 4  # two rounds of an order question and a CRM note
    assert counted[("research", "runs_finished", "failed", "")] == 1
    assert counted[("research", "loops", "break", "repeat")] == 1
    assert counted[("tracking", "tool_calls", "track_parcel", "error")] == 2
    assert counted[("tracking", "retries", "track_parcel", "")] == 2
    assert counted[("refund-desk", "escalations", "severity", "")] == 1
    sqlite.close()


async def test_money_and_tokens_in_the_rollups_equal_the_runs_totals(sqlite_store: SQLiteStore) -> None:
    await populate(sqlite_store.url, rounds=2)
    runs = await sqlite_store.list_runs(limit=100)
    rows = await sqlite_store.rollups(metrics=["model_calls", "tool_calls"], bucket_s=0)
    assert sum(r.tokens_in + r.tokens_out for r in rows) == sum(run.total_tokens for run in runs)
    assert sum(r.cost_usd for r in rows) == pytest.approx(sum(run.cost_usd for run in runs))


async def test_buckets_sum_by_time_and_since_leaves_older_spans_out(memory_store: MemoryStore) -> None:
    now = time.time()
    hour = int(now // 3600) * 3600
    for run_id, ts in (("r1", hour - 1800), ("r2", hour + 1), ("r3", now - 30 * 86400)):
        await memory_store.create_run(RunRecord(run_id, "a", "t", "m"), Event(run_id, 1, EventKind.RUN_STARTED, ts=ts))
    hourly = await memory_store.rollups(since=now - 86400, metrics=["runs_started"], bucket_s=3600)
    assert sorted((r.bucket, r.n) for r in hourly) == [(hour - 3600, 1), (hour, 1)]
    assert sum(r.n for r in await memory_store.rollups(since=hour, bucket_s=0)) == 1  # minutes: exact
    assert sum(r.n for r in await memory_store.rollups(bucket_s=0)) == 3  # all time


async def test_sqlite_reads_each_window_at_its_span_and_agrees_with_memory(tmp_path: Path) -> None:
    sqlite, memory = SQLiteStore(tmp_path / "keel.db"), MemoryStore()
    now = time.time()
    for i, age in enumerate((10, 4000, 3 * 86400, 40 * 86400, 200 * 86400)):
        for store in (sqlite, memory):
            await store.create_run(
                RunRecord(f"r{i}", "a", "t", "m"), Event(f"r{i}", 1, EventKind.RUN_STARTED, ts=now - age)
            )
    for since, bucket_s in (
        (now - 3600, 60),
        (now - 86400, 0),
        (now - 7 * 86400, 0),
        (None, 0),
        (now - 30 * 86400, 86400),
    ):
        a = sorted((r.bucket, r.n) for r in await sqlite.rollups(since=since, bucket_s=bucket_s))
        b = sorted((r.bucket, r.n) for r in await memory.rollups(since=since, bucket_s=bucket_s))
        assert a == b, (since, bucket_s)
    assert resolution(now - 3600, 0, now) == 60 and resolution(now - 7 * 86400, 0, now) == 3600
    assert resolution(None, 0, now) == 86400 and resolution(now - 86400, 3600, now) == 3600
    sqlite.close()


async def test_a_resumed_run_is_not_a_new_run_and_its_finish_counts_working_time(sqlite_store: SQLiteStore) -> None:
    agent = Agent("a", ScriptedModel([call("lookup_order", order_id="A-1"), reply("ok")]), tools=[lookup_order])
    result = await agent.with_store(sqlite_store).run("go")
    finished = result.events[-1]
    assert finished.kind is EventKind.RUN_FINISHED and 0 < finished.latency_ms < 10_000
    resumed = Event("x", 5, EventKind.RUN_STARTED, payload={"resumed": True, "from": "escalated"})
    assert increments(resumed) == []
    assert [i.metric for i in increments(finished)] == ["runs_finished", "run_latency"]


async def test_failed_model_calls_and_budget_refusals_are_counted(sqlite_store: SQLiteStore) -> None:
    broke = Agent("a", ScriptedModel([fail("provider 500")]), store=sqlite_store)
    await broke.run("go")
    tight = Agent("b", ScriptedModel([reply("x")], usage=(5000, 50)), budget=Budget(max_tokens=100), store=sqlite_store)
    await tight.run("go")
    counted = _totals(await sqlite_store.rollups(bucket_s=0))
    assert counted[("a", "model_errors", "test:scripted", "final")] == 1
    assert sum(n for key, n in counted.items() if key[0] == "b" and key[1] == "budget_refusals") == 1


async def test_a_store_of_schema_3_gets_its_rollups_from_the_journal_it_has(tmp_path: Path) -> None:
    await populate(f"sqlite:///{tmp_path / 'new.db'}", rounds=1)
    new = SQLiteStore(tmp_path / "new.db")
    expected = _totals(await new.rollups(bucket_s=0))
    new.close()
    old = tmp_path / "v3.db"
    conn = sqlite3.connect(old)  # what Keel 3 wrote: the same runs and events, no rollups table
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("ATTACH DATABASE ? AS new", (str(tmp_path / "new.db"),))
    conn.execute("INSERT INTO runs SELECT * FROM new.runs")
    conn.execute("INSERT INTO events SELECT * FROM new.events")
    conn.commit()
    conn.execute("DETACH DATABASE new")
    conn.close()

    migrated = SQLiteStore(old)
    assert _totals(await migrated.rollups(bucket_s=0)) == expected
    migrated.close()


def test_latency_buckets_and_quantiles_interpolate_like_prometheus() -> None:
    assert [bucket_label(s) for s in (0.001, 0.005, 0.3, 2.0, 5000.0)] == ["0.005", "0.005", "0.5", "2.5", "+Inf"]
    assert quantile({}, 0.5) is None
    assert quantile({"1": 10}, 0.5) == pytest.approx(0.75)  # half-way through the 0.5–1 s bucket
    assert quantile({"0.1": 90, "10": 10}, 0.95) == pytest.approx(7.5)
    assert quantile({"+Inf": 3}, 0.5) == 1000.0
