"""The PostgreSQL store against a real server: the `Store` contract, its guarantees across connections and processes.

Runs only when ``KEEL_TEST_POSTGRES_URL`` names a server (CI sets it); each test gets a schema of its own, dropped
afterwards.
"""

import asyncio
import dataclasses
import json
import os
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from _processes import start_together
from escalation_agents import desk_model, fetch_ticket, refund
from keel import Agent, Event, EventKind, Phase, ReviewQueue, RunStatus, tool
from keel.cost import Refusal, Reservation, SpendLedger, SpendLimit
from keel.errors import (
    ConfigError,
    ResumeError,
    ReviewError,
    StoreError,
    StoreNotFoundError,
    StoreVersionError,
    UnknownRunError,
)
from keel.observe import usage_report
from keel.store import MemoryStore, RunRecord, Store
from keel.store.base import ReviewItem

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")

from keel.store import _postgres_migrations  # noqa: E402 - needs psycopg
from keel.store._postgres_migrations import SCHEMA_VERSION  # noqa: E402
from keel.store._postgres_pool import redact  # noqa: E402
from keel.store.postgres import PostgresStore  # noqa: E402
from keel.testing import FunctionModel, ScriptedModel, call, reply  # noqa: E402

URL = os.environ.get("KEEL_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(
    not URL, reason="KEEL_TEST_POSTGRES_URL is not set: no PostgreSQL server to test the Postgres store against"
)
T0 = 1_700_000_000.0


def sql(statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on a connection of its own, not through the code under test."""
    with psycopg.connect(URL, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    yield name
    sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def store(schema: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(URL, schema=schema)
    yield opened
    opened.close()


@pytest.fixture
def other(schema: str, store: PostgresStore) -> Iterator[PostgresStore]:
    """A second store object on the same schema: its own pool, its own connections (as another process has)."""
    opened = PostgresStore(URL, schema=schema)
    yield opened
    opened.close()


def run_record(run_id: str, **kw) -> RunRecord:
    return RunRecord(run_id=run_id, agent=kw.pop("agent", "a"), task="t", model="m", started_at=kw.pop("t", 1.0), **kw)


def started(run_id: str, ts: float = T0) -> Event:
    return Event(run_id, 1, EventKind.RUN_STARTED, ts=ts)


# --- runs and journals --------------------------------------------------------------------------------------------


async def test_runs_and_journals_round_trip(store):
    payload = {"task": "héllo ✓", "z": 1, "a": [1.5, None, {"nested": True}], "big": 2**62, "nul": "a\x00b"}
    await store.create_run(
        run_record("r1", session_id="s1"), Event("r1", 1, EventKind.RUN_STARTED, Phase.EXECUTION, payload)
    )
    await store.append(Event("r1", 2, EventKind.MODEL_CALLED, Phase.ROUTING, {"text": "x"}, 10, 5, 0.001, 12.5, ts=2.0))
    events = await store.events("r1")
    assert [(e.seq, e.kind, e.phase) for e in events] == [
        (1, EventKind.RUN_STARTED, Phase.EXECUTION),
        (2, EventKind.MODEL_CALLED, Phase.ROUTING),
    ]
    assert events[0].payload == payload and list(events[0].payload) == list(payload), "same dict, same key order"
    assert (events[1].tokens_in, events[1].tokens_out, events[1].cost_usd, events[1].latency_ms, events[1].ts) == (
        10,
        5,
        0.001,
        12.5,
        2.0,
    )

    done = run_record("r1", session_id="s1", status=RunStatus.PARTIAL, steps=3, input_tokens=10, output_tokens=5)
    done.output, done.report, done.reason, done.finished_at = {"a": 1}, {"reason": "max_steps"}, "max_steps", 3.0
    done.started_at = 99.0  # finishing never rewrites the start time
    await store.finish_run(done, Event("r1", 3, EventKind.RUN_FINISHED, payload={"status": "partial"}))
    row = await store.get_run("r1")
    assert (row.status, row.steps, row.total_tokens, row.output, row.report, row.reason) == (
        RunStatus.PARTIAL,
        3,
        15,
        {"a": 1},
        {"reason": "max_steps"},
        "max_steps",
    )
    assert (row.started_at, row.finished_at, row.session_id) == (1.0, 3.0, "s1")
    assert isinstance(store, Store)


async def test_list_count_filters_and_offset(store):
    await store.create_run(run_record("old", agent="a", t=1.0, session_id="s1"), started("old"))
    await store.create_run(run_record("new", agent="b", t=2.0, session_id="s1"), started("new"))
    await store.create_run(
        run_record("other", agent="a", t=3.0, session_id="s2", status=RunStatus.FAILED), started("other")
    )
    ids = lambda runs: [r.run_id for r in runs]  # noqa: E731
    assert ids(await store.list_runs()) == ["other", "new", "old"]
    assert ids(await store.list_runs(limit=1)) == ["other"]
    assert ids(await store.list_runs(limit=1, offset=1)) == ["new"]
    assert ids(await store.list_runs(offset=2)) == ["old"]
    assert ids(await store.list_runs(agent="a")) == ["other", "old"]
    assert ids(await store.list_runs(session_id="s1")) == ["new", "old"]
    assert ids(await store.list_runs(status=RunStatus.FAILED)) == ["other"]
    assert ids(await store.list_runs(since=2.0)) == ["other", "new"]
    assert ids(await store.list_runs(agent="a", session_id="s1")) == ["old"]
    assert await store.count_runs() == 3
    assert await store.count_runs(agent="a") == 2
    assert await store.count_runs(session_id="s1", since=2.0) == 1
    assert await store.count_runs(status=RunStatus.COMPLETED) == 0


async def test_events_page_through_a_long_journal_and_recent_events_span_runs(store):
    await store.create_run(run_record("r1"), started("r1", ts=1.0))
    for seq in range(2, 31):
        await store.append(Event("r1", seq, EventKind.CHECKPOINT, payload={"step": seq}, ts=float(seq)))
    assert [e.seq for e in await store.events("r1", after=10, limit=5)] == [11, 12, 13, 14, 15]
    assert [e.seq for e in await store.events("r1", after=28)] == [29, 30]
    assert await store.events("r1", after=30) == []
    assert len(await store.events("r1")) == 30

    await store.create_run(run_record("r2"), started("r2", ts=100.0))
    assert [e.run_id for e in await store.recent_events(EventKind.RUN_STARTED)] == ["r2", "r1"]
    assert [e.run_id for e in await store.recent_events(EventKind.RUN_STARTED, since=50.0)] == ["r2"]
    assert [e.seq for e in await store.recent_events(EventKind.CHECKPOINT, limit=2)] == [30, 29]


async def test_unknown_runs_are_a_clear_error(store):
    with pytest.raises(UnknownRunError, match="no run 'ghost' in the store at postgresql://"):
        await store.get_run("ghost")
    with pytest.raises(UnknownRunError):
        await store.events("ghost")
    with pytest.raises(UnknownRunError):
        await store.finish_run(run_record("ghost"), Event("ghost", 2, EventKind.RUN_FINISHED))
    await store.create_run(run_record("ghost"), started("ghost"))
    assert [e.seq for e in await store.events("ghost")] == [1], "the failed finish left no orphan event"


async def test_the_journal_is_append_only_and_a_run_row_never_exists_without_its_first_event(store, schema):
    await store.create_run(run_record("r1"), started("r1"))
    with pytest.raises(StoreError, match=r"already recorded and the journal is append-only .*\(r1, 1\)"):
        await store.append(Event("r1", 1, EventKind.RUN_FINISHED))
    with pytest.raises(StoreError, match="runs_pkey"):
        await store.create_run(run_record("r1"), started("r1"))
    with pytest.raises(StoreError):  # the first event is a duplicate: the row is rolled back with it
        await store.create_run(run_record("r2"), Event("r1", 1, EventKind.RUN_STARTED))
    with pytest.raises(UnknownRunError):
        await store.get_run("r2")
    assert len(await store.events("r1")) == 1

    with pytest.raises(psycopg.errors.RaiseException, match="the journal is append-only"):
        sql(f'UPDATE "{schema}".events SET kind = %s', ("run_finished",))
    assert (await store.events("r1"))[0].kind is EventKind.RUN_STARTED


# --- resuming -----------------------------------------------------------------------------------------------------


async def paused_run(store, run_id: str) -> Event:
    """A run escalated after two events; returns the resumed ``run_started`` a claimer would append."""
    await store.create_run(run_record(run_id), started(run_id))
    await store.finish_run(
        run_record(run_id, status=RunStatus.ESCALATED),
        Event(run_id, 2, EventKind.RUN_FINISHED, payload={"status": "escalated"}),
    )
    return Event(run_id, 3, EventKind.RUN_STARTED, payload={"resumed": True, "from": "escalated"})


async def test_resume_claims_a_paused_run_once(store):
    first = await paused_run(store, "r1")
    row = await store.resume_run("r1", first, paused=RunStatus.ESCALATED)
    assert (row.status, row.finished_at) == (RunStatus.RUNNING, None)
    assert [e.seq for e in await store.events("r1")] == [1, 2, 3]
    with pytest.raises(ResumeError, match="r1 is running, not escalated"):
        await store.resume_run("r1", first, paused=RunStatus.ESCALATED)
    with pytest.raises(UnknownRunError):
        await store.resume_run("ghost", first, paused=RunStatus.ESCALATED)

    stale = await paused_run(store, "r2")
    await store.append(dataclasses.replace(stale, kind=EventKind.CHECKPOINT))  # someone appended meanwhile
    with pytest.raises(ResumeError, match="r2 moved on while it was being resumed"):
        await store.resume_run("r2", dataclasses.replace(stale, seq=3), paused=RunStatus.ESCALATED)
    assert (await store.get_run("r2")).status is RunStatus.ESCALATED, "a refused claim changes nothing"


async def test_concurrent_claims_from_several_connections_exactly_one_wins(store, schema):
    claimers = [store] + [PostgresStore(URL, schema=schema) for _ in range(3)]
    try:
        for n in range(8):
            first = await paused_run(store, f"r{n}")
            outcomes = await asyncio.gather(
                *(c.resume_run(f"r{n}", first, paused=RunStatus.ESCALATED) for c in claimers), return_exceptions=True
            )
            won = [o for o in outcomes if isinstance(o, RunRecord)]
            lost = [o for o in outcomes if isinstance(o, ResumeError)]
            assert len(won) == 1 and len(lost) == len(claimers) - 1, outcomes
            assert [e.seq for e in await store.events(f"r{n}")] == [1, 2, 3]
    finally:
        for claimer in claimers[1:]:
            claimer.close()


async def test_a_claim_racing_the_process_still_running_the_run_is_refused(store, schema):
    first = await paused_run(store, "r1")
    with psycopg.connect(URL) as conn:  # the process running r1, mid-transaction: it is appending seq 3 right now
        conn.execute(
            f'INSERT INTO "{schema}".events (run_id, seq, kind, phase, payload, ts) VALUES (%s, 3, %s, %s, %s, 0)',
            ("r1", "checkpoint", "execution", "{}"),
        )
        claim = asyncio.ensure_future(store.resume_run("r1", first, paused=RunStatus.ESCALATED))
        await asyncio.sleep(0.3)  # the claim read seq 2 as the last, and waits on the uncommitted seq 3
        assert not claim.done()
        conn.commit()
    with pytest.raises(ResumeError, match="r1 moved on while it was being resumed"):
        await claim
    assert (await store.get_run("r1")).status is RunStatus.ESCALATED


# --- rollups ------------------------------------------------------------------------------------------------------


async def journal_some_runs(store: Store, now: float) -> None:
    """Runs of two agents spread over three days, with events of every counted shape (binary-exact amounts)."""
    for i, agent in enumerate(["a", "b", "a", "b"]):
        run_id, t0 = f"r{i}", now - i * 7 * 3600 - 100
        await store.create_run(run_record(run_id, agent=agent, t=t0), Event(run_id, 1, EventKind.RUN_STARTED, ts=t0))
        shapes = [
            (EventKind.MODEL_CALLED, Phase.ROUTING, {"model": "m1"}, 100, 20, 0.25, 125.0),
            (
                EventKind.MODEL_CALLED,
                Phase.EXECUTION,
                {"model": "m2", "error": "503", "retryable": True},
                0,
                0,
                0.0,
                50.0,
            ),
            (
                EventKind.TOOL_CALLED,
                Phase.EXECUTION,
                {"tool": "lookup", "outcome": "ok", "attempt": 1},
                0,
                0,
                0.5,
                0.375,
            ),
            (EventKind.CACHE_HIT, Phase.EXECUTION, {"saved_tokens": 7, "saved_cost_usd": 0.125}, 0, 0, 0.0, 0.0),
            (EventKind.GUARD_VERDICT, Phase.EXECUTION, {"guard": "pii", "verdict": "pass"}, 0, 0, 0.0, 0.0),
            (EventKind.CHECKPOINT, Phase.EXECUTION, {"step": 1}, 0, 0, 0.0, 0.0),
        ]
        for seq, (kind, phase, payload, tin, tout, cost, ms) in enumerate(shapes, start=2):
            await store.append(Event(run_id, seq, kind, phase, payload, tin, tout, cost, ms, ts=t0 + seq * 45))
        last = Event(run_id, 8, EventKind.RUN_FINISHED, payload={"status": "completed"}, latency_ms=1500.0, ts=t0 + 400)
        await store.finish_run(run_record(run_id, agent=agent, t=t0, status=RunStatus.COMPLETED), last)


async def test_rollups_equal_what_the_memory_store_computes(store):
    now = time.time()
    memory = MemoryStore()
    await journal_some_runs(store, now)
    await journal_some_runs(memory, now)
    queries = [
        {"bucket_s": 0},
        {"bucket_s": 60, "since": now - 3600},
        {"bucket_s": 3600, "since": now - 3 * 86400},
        {"bucket_s": 86400},
        {"bucket_s": 0, "since": now - 8 * 3600, "metrics": ["model_calls", "tool_calls", "runs_finished"]},
        {"bucket_s": 0, "since": now - 30 * 86400},
    ]
    for query in queries:
        expected = sorted(dataclasses.astuple(r) for r in await memory.rollups(**query))
        got = sorted(dataclasses.astuple(r) for r in await store.rollups(**query))
        assert got == expected and got, query


async def test_a_store_migrated_from_version_3_counts_the_events_it_already_has(schema):
    with psycopg.connect(URL, autocommit=True) as conn:
        _postgres_migrations.migrate(conn, schema, "test", upto=3)
    memory, now = MemoryStore(), time.time()
    await journal_some_runs(memory, now)
    rows = [(r.run_id, r.agent, r.task, r.model, r.status.value, r.started_at) for r in await memory.list_runs()]
    events = [e for r in rows for e in await memory.events(r[0])]
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.cursor().executemany(
            f'INSERT INTO "{schema}".runs (run_id, agent, task, model, status, started_at) '
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
        conn.cursor().executemany(
            f'INSERT INTO "{schema}".events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)',
            [
                (e.run_id, e.seq, e.kind.value, e.phase.value, json.dumps(e.payload), e.tokens_in,
                 e.tokens_out, e.cost_usd, e.latency_ms, e.ts)
                for e in events
            ],
        )  # fmt: skip
    with pytest.raises(StoreError, match="schema version 3; run an agent on it with this Keel to migrate"):
        PostgresStore(URL, schema=schema, create=False)
    store = PostgresStore(URL, schema=schema)
    try:
        assert sql(f'SELECT version FROM "{schema}".schema_version ORDER BY version') == [
            (n,) for n in range(1, SCHEMA_VERSION + 1)
        ]
        got = sorted(dataclasses.astuple(r) for r in await store.rollups(bucket_s=0))
        assert got == sorted(dataclasses.astuple(r) for r in await memory.rollups(bucket_s=0)) and got
    finally:
        store.close()


# --- the spend ledger ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def on(limit: SpendLimit, key: str = "agent:support") -> list[tuple[SpendLimit, str]]:
    return [(limit, key)]


async def test_the_ledger_reserves_settles_releases_and_expires(store):
    clock = Clock()
    ledger = SpendLedger(store, clock=clock)
    limits = on(SpendLimit(per_hour_usd=1.0))
    held = await ledger.reserve("run-1", limits, 0.7, 0, ttl_s=30)
    assert isinstance(held, Reservation)
    refusal = await ledger.reserve("run-2", limits, 0.4, 0, ttl_s=30)
    assert isinstance(refusal, Refusal) and (refusal.spent, refusal.reserved, refusal.requested) == (0.0, 0.7, 0.4)
    await ledger.settle(held, 0.2, 0)  # settling lowers the window to the actual spend
    assert isinstance(await ledger.reserve("run-2", limits, 0.8, 0, ttl_s=30), Reservation)  # exactly the ceiling
    totals = await ledger.totals("agent:support", "hour")
    assert (totals.spent_usd, totals.reserved_usd) == (0.2, 0.8)

    clock.now += 30  # run-2's reservation expires: it stops counting, and the next reservation purges it
    released = await ledger.reserve("run-3", limits, 0.3, 0, ttl_s=30)
    assert isinstance(released, Reservation)
    await ledger.release(released)
    await ledger.release(released)  # twice: nothing happens
    assert sql(f'SELECT entry_id FROM "{store.schema}".spend') == [(held.entry_id,)]

    clock.now += 3600  # the settled spend is now an hour old
    assert (await ledger.totals("agent:support", "hour")).spent_usd == 0
    tokens = on(SpendLimit(per_hour_tokens=100), "user:b")
    assert isinstance(await ledger.reserve("r", tokens, 100.0, 100, ttl_s=9), Reservation)  # money ignored
    assert isinstance(await ledger.reserve("r", tokens, 0.0, 1, ttl_s=9), Refusal)


async def test_concurrent_reservations_from_several_connections_never_cross_the_ceiling(store, schema):
    stores = [store] + [PostgresStore(URL, schema=schema) for _ in range(2)]
    limits = on(SpendLimit(per_hour_usd=1.0, scope="global"), "global")
    try:
        outcomes = await asyncio.gather(
            *(SpendLedger(stores[i % 3]).reserve(f"run-{i}", limits, 0.03, 0, ttl_s=60) for i in range(90))
        )
    finally:
        for extra in stores[1:]:
            extra.close()
    assert sum(isinstance(o, Reservation) for o in outcomes) == 33  # 33 × 0.03 = 0.99: the 34th would cross 1.00
    totals = await store.spend_totals("global", 0.0, now=time.time())
    assert totals.reserved_nano_usd == 990_000_000


SPEND_WORKER = textwrap.dedent(
    """
    import asyncio, random, sys, time
    from pathlib import Path
    from keel.cost import Reservation, SpendLedger, SpendLimit
    from keel.store.postgres import PostgresStore

    url, schema, worker, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    ceiling = float(sys.argv[5])
    LIMITS = [(SpendLimit(per_hour_usd=ceiling, scope="global"), "global")]

    async def lane(ledger, lane_no):
        rng = random.Random(worker * 100 + lane_no)
        granted = refused = settled_nano = 0
        for i in range(10):
            worst = round(rng.uniform(0.01, 0.05), 4)
            got = await ledger.reserve(f"run-{worker}-{lane_no}-{i}", LIMITS, worst, 0, ttl_s=60)
            if not isinstance(got, Reservation):
                refused += 1
                continue
            granted += 1
            await asyncio.sleep(rng.uniform(0, 0.003))  # the model call
            if rng.random() < 0.1:
                await ledger.release(got)
            else:
                actual = round(rng.uniform(0, worst), 6)
                await ledger.settle(got, actual, 0)
                settled_nano += round(actual * 1e9)
        return granted, refused, settled_nano

    async def main():
        store = PostgresStore(url, schema=schema)
        ledger = SpendLedger(store)
        (barrier / f"ready-{worker}").touch()
        deadline = time.monotonic() + 60
        while not (barrier / "go").exists():
            assert time.monotonic() < deadline, "never released"
            time.sleep(0.002)
        results = await asyncio.gather(*(lane(ledger, n) for n in range(5)))  # 5 lanes × 10: several connections
        store.close()
        print(*(sum(r[k] for r in results) for k in range(3)))

    asyncio.run(main())
    """
)


def test_processes_sharing_the_store_never_cross_the_ceiling_together(store, schema, tmp_path: Path):
    ceiling, workers = 2.0, 4
    barrier = tmp_path / "barrier"
    procs = start_together(
        SPEND_WORKER, barrier, workers, lambda w: [URL, schema, str(w), str(barrier), str(ceiling)], timeout=60
    )

    async def watch() -> int:
        samples = 0  # sampled while the workers run: settled + live reservations never exceed the ceiling
        while any(p.poll() is None for p in procs):
            totals = await store.spend_totals("global", time.time() - 3600, now=time.time())
            assert totals.settled_nano_usd + totals.reserved_nano_usd <= ceiling * 1e9, totals
            samples += 1
            await asyncio.sleep(0.002)
        return samples

    samples = asyncio.run(asyncio.wait_for(watch(), 60))
    granted = refused = settled_nano = 0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        g, r, s = map(int, out.split())
        granted, refused, settled_nano = granted + g, refused + r, settled_nano + s
    assert granted + refused == workers * 50 and granted > 0 and refused > 0 and samples > 5
    ((settled, live),) = sql(
        f'SELECT SUM(nano_usd) FILTER (WHERE expires_at IS NULL), COUNT(expires_at) FROM "{schema}".spend '
        "WHERE key = 'global'"
    )
    assert settled <= ceiling * 1e9, f"{settled / 1e9} USD settled against a {ceiling} USD ceiling"
    assert settled == settled_nano, "every settlement the workers made is in the ledger, none twice"
    assert live == 0, "every reservation was settled or released"
    assert settled > ceiling / 2 * 1e9, "the ledger let spend through up to near its ceiling"


# --- the review queue ---------------------------------------------------------------------------------------------


def item(n: int, **kw) -> ReviewItem:
    return ReviewItem(
        id=f"rev-{n:012x}", run_id=kw.pop("run_id", "run-1"), agent="support", reason="refund is severity high",
        action="refund", arguments={"order_id": str(n), "amount": 20.5}, created_at=T0 + n, **kw,
    )  # fmt: skip


async def test_the_review_queue_orders_decides_once_and_names_the_first_decision(store):
    for n, priority in [(1, 0), (2, 5), (3, 0)]:
        await store.add_review(item(n, priority=priority))
    with pytest.raises(StoreError, match="reviews_pkey"):
        await store.add_review(item(1))
    assert (await store.get_review(item(1).id)).arguments == {"order_id": "1", "amount": 20.5}
    with pytest.raises(ReviewError, match="no review item 'rev-nope'"):
        await store.get_review("rev-nope")
    with pytest.raises(ReviewError, match="no review item"):
        await store.decide_review("rev-nope", "approved", by="alice", at=T0)

    decided = await store.decide_review(item(3).id, "approved", by="alice", note="ok", at=T0 + 10)
    assert (decided.status, decided.decided_by, decided.note, decided.decided_at) == (
        "approved",
        "alice",
        "ok",
        T0 + 10,
    )
    with pytest.raises(ReviewError, match=f"review item {item(3).id} was already approved by alice at .*note: ok"):
        await store.decide_review(item(3).id, "denied", by="bob", at=T0 + 11)
    await store.decide_review(item(1).id, "denied", by="bob", at=T0 + 12)
    assert [i.id for i in await store.list_reviews()] == [item(n).id for n in (2, 1, 3)]
    assert [i.id for i in await store.list_reviews(status="pending")] == [item(2).id]
    assert [i.id for i in await store.list_reviews(status="approved", run_id="run-1", limit=5)] == [item(3).id]
    assert await store.list_reviews(run_id="run-2") == []
    with pytest.raises(psycopg.errors.RaiseException, match="a decided review item is final"):
        sql(f'UPDATE "{store.schema}".reviews SET note = %s WHERE id = %s', ("rewritten", item(3).id))


async def test_connections_deciding_the_same_items_at_once_one_wins_each(store, schema):
    deciders = [store] + [PostgresStore(URL, schema=schema) for _ in range(3)]
    try:
        for n in range(10):
            await store.add_review(item(n))
        for n in range(10):
            outcomes = await asyncio.gather(
                *(d.decide_review(item(n).id, "approved", by=f"d{k}", at=T0 + k) for k, d in enumerate(deciders)),
                return_exceptions=True,
            )
            won = [o for o in outcomes if isinstance(o, ReviewItem)]
            lost = [o for o in outcomes if isinstance(o, ReviewError)]
            assert len(won) == 1 and len(lost) == len(deciders) - 1, outcomes
            assert all(f"was already approved by {won[0].decided_by} at" in str(e) for e in lost)
            assert (await store.get_review(item(n).id)).decided_by == won[0].decided_by
    finally:
        for decider in deciders[1:]:
            decider.close()


# --- cache and data_version ---------------------------------------------------------------------------------------


async def test_the_cache_gets_puts_replaces_and_expires(store):
    assert await store.cache_get("k", now=T0) is None
    await store.cache_put("k", "v1", expires_at=T0 + 10, now=T0)
    assert await store.cache_get("k", now=T0 + 9.9) == "v1"
    assert await store.cache_get("k", now=T0 + 10) is None
    await store.cache_put("k", "v2", expires_at=None, now=T0)
    assert await store.cache_get("k", now=T0 + 10**6) == "v2"
    for n in range(5):
        await store.cache_put(f"old-{n}", "x", expires_at=T0 + 1, now=T0)
    await store.cache_put("new", "y", expires_at=None, now=T0 + 2)  # purges the expired entries
    assert sorted(k for (k,) in sql(f'SELECT key FROM "{store.schema}".cache')) == ["k", "new"]


async def test_data_version_moves_with_every_write_from_any_connection(store, other, schema):
    before = await store.data_version()
    await store.list_runs()
    assert await store.data_version() == before, "reading changes nothing"
    await other.create_run(run_record("r1"), started("r1"))
    after_create = await store.data_version()
    assert after_create != before
    with pytest.raises(StoreError):
        await other.append(started("r1"))  # a failed (rolled back) write
    assert await store.data_version() == after_create
    for write in (
        other.append(Event("r1", 2, EventKind.CHECKPOINT)),
        other.add_review(item(1)),
        other.cache_put("k", "v", expires_at=None, now=T0),
        SpendLedger(other).reserve("r1", on(SpendLimit(per_hour_usd=1)), 0.1, 0, ttl_s=60),
    ):
        seen = await store.data_version()
        await write
        assert await store.data_version() != seen
    seen = await store.data_version()
    sql(f'DELETE FROM "{schema}".cache')  # by hand, outside Keel: counted too
    assert await store.data_version() != seen


# --- opening --------------------------------------------------------------------------------------------------------


def test_without_create_a_missing_schema_is_not_created(schema):
    with pytest.raises(
        StoreNotFoundError, match=f"no store at .* \\(schema {schema}\\) yet: run an agent first"
    ) as info:
        PostgresStore(URL, schema=schema, create=False)
    assert schema in info.value.path
    assert sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)) == []


async def test_without_create_an_existing_store_is_read_only(store, schema):
    await store.create_run(run_record("r1"), started("r1"))
    reader = PostgresStore(URL, schema=schema, create=False)
    try:
        assert [r.run_id for r in await reader.list_runs()] == ["r1"]
        with pytest.raises(StoreError, match="read-only"):
            await reader.create_run(run_record("r2"), started("r2"))
    finally:
        reader.close()


def test_a_newer_store_an_empty_schema_and_a_bad_schema_name_are_refused(store, schema):
    sql(f'INSERT INTO "{schema}".schema_version VALUES (%s, 0)', (SCHEMA_VERSION + 1,))
    for create in (True, False):
        with pytest.raises(StoreVersionError, match="upgrade keel-agents"):
            PostgresStore(URL, schema=schema, create=create)
    empty = f"{schema}_empty"
    sql(f'CREATE SCHEMA "{empty}"')
    try:
        with pytest.raises(StoreError, match="is not a Keel store"):
            PostgresStore(URL, schema=empty, create=False)
    finally:
        sql(f'DROP SCHEMA "{empty}" CASCADE')
    with pytest.raises(ConfigError, match="must be a plain name"):
        PostgresStore(URL, schema='x"; DROP TABLE runs; --')


def test_processes_opening_a_new_store_at_once_migrate_it_once(schema):
    def open_close(_: int) -> None:
        PostgresStore(URL, schema=schema).close()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(open_close, range(6)))
    assert sql(f'SELECT version FROM "{schema}".schema_version ORDER BY version') == [
        (n,) for n in range(1, SCHEMA_VERSION + 1)
    ]


def test_an_unreachable_server_fails_fast_without_showing_the_password():
    started_at = time.monotonic()
    with pytest.raises(
        StoreError, match=r"cannot open the store at postgresql://postgres:\*\*\*@127.0.0.1:1/test"
    ) as info:
        PostgresStore("postgresql://postgres:s3cr3t-pw@127.0.0.1:1/test")
    assert time.monotonic() - started_at < 5
    assert "s3cr3t-pw" not in str(info.value) and "s3cr3t-pw" not in str(info.value.__cause__)
    assert "Check that the server is running" in str(info.value)


async def test_the_password_never_appears_in_the_url_or_in_messages(schema):
    parts = urlsplit(URL)
    host = parts.netloc.rpartition("@")[2]
    with_password = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:hunter2-pw@{host}"))
    store = PostgresStore(with_password, schema=schema)  # trust authentication ignores the password
    try:
        assert "hunter2-pw" not in store.url and "hunter2-pw" not in repr(store)
        await store.create_run(run_record("r1"), started("r1"))
        with pytest.raises(StoreError) as info:
            await store.append(started("r1"))
        assert "hunter2-pw" not in str(info.value)
    finally:
        store.close()
    with pytest.raises(StoreError) as closed:
        await store.get_run("r1")  # after close: a clear error, still without the password
    assert "hunter2-pw" not in str(closed.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@db:5432/keel", "postgresql://u:***@db:5432/keel"),
        ("postgresql://u@db/keel?password=pw&sslmode=require", "postgresql://u@db/keel?password=***&sslmode=require"),
        ("postgres://db/keel", "postgres://db/keel"),
        ("host=db user=u password='a b' dbname=keel", "host=db user=u password=*** dbname=keel"),
    ],
)
def test_urls_are_shown_without_their_password(url, shown):
    assert redact(url) == shown


# --- agents on the store --------------------------------------------------------------------------------------------


@tool(trusted=True, cost_usd=0.01)
def lookup(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


async def test_an_agent_runs_end_to_end_and_its_usage_report_matches_the_run(store):
    model = ScriptedModel([call("lookup", order_id="1"), reply("Order 1 shipped.")], usage=(100, 20), price=(1.0, 2.0))
    result = await Agent("desk", model, tools=[lookup], store=store, guards=[]).run(
        "Where is order 1?", session_id="s1"
    )
    assert result.ok and result.output == "Order 1 shipped."
    journal = await store.events(result.run_id)
    assert [(e.seq, e.kind, e.tokens_in, e.cost_usd) for e in journal] == [
        (e.seq, e.kind, e.tokens_in, e.cost_usd) for e in result.events
    ]
    row = await store.get_run(result.run_id)
    assert (row.status, row.total_tokens, row.session_id) == (RunStatus.COMPLETED, result.usage.total_tokens, "s1")

    report = await usage_report(store)
    assert report.runs == 1
    assert (report.total.input_tokens, report.total.output_tokens, report.total.requests, report.total.tool_calls) == (
        result.usage.input_tokens,
        result.usage.output_tokens,
        result.usage.requests,
        result.usage.tool_calls,
    )
    assert report.total.cost_usd == pytest.approx(result.usage.cost_usd) and result.usage.cost_usd > 0
    assert set(report.total.by_phase) == set(result.usage.by_phase)
    calls = await store.rollups(bucket_s=0, metrics=["model_calls", "tool_calls"])
    assert sum(r.cost_usd for r in calls) == pytest.approx(result.usage.cost_usd)


def test_run_sync_on_several_event_loops_and_threads_shares_one_store(store):
    agent = Agent("desk", ScriptedModel([reply("hi")] * 6), store=store, guards=[])
    assert agent.run_sync("one").ok and agent.run_sync("two").ok  # a new event loop each time
    with ThreadPoolExecutor(4) as pool:
        assert all(r.ok for r in pool.map(lambda n: agent.run_sync(f"t{n}"), range(4)))
    assert asyncio.run(store.count_runs(agent="desk")) == 6


async def test_an_escalated_run_is_approved_and_resumed_on_the_store(store, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_TEST_REFUNDS", str(tmp_path / "refunds.txt"))
    agent = Agent("desk", FunctionModel(desk_model), tools=[fetch_ticket, refund], store=store)
    first = await agent.run("Please look at ticket T-1.", session_id="s-1")
    assert first.status is RunStatus.ESCALATED
    [pending] = await ReviewQueue(store).pending(run_id=first.run_id)
    await ReviewQueue(store).approve(pending.id, by="alice")
    result = await agent.resume(first.run_id)
    assert result.status is RunStatus.COMPLETED and result.output == "Done: refunded 500.0 on A-1002."
    assert (tmp_path / "refunds.txt").read_text().splitlines() == ["A-1002 500.0"]
    assert [e.seq for e in await store.events(first.run_id)] == list(range(1, len(result.events) + 1))
    with pytest.raises(ResumeError):
        await agent.resume(first.run_id)


def test_open_store_opens_a_postgresql_url_and_keel_store_can_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    url = os.environ.get("KEEL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against (CI sets it)")
    from keel import open_store
    from keel.store.postgres import PostgresStore

    monkeypatch.setenv("KEEL_STORE", url)
    store = open_store()
    try:
        assert isinstance(store, PostgresStore)
    finally:
        store.close()
