import asyncio
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from keel import Event, EventKind, open_store
from keel.errors import ConfigError, ReviewError, StoreError
from keel.guardrails.review import ReviewItem, ReviewQueue
from keel.store import MemoryStore, RunRecord, SQLiteStore, Store
from keel.store._migrations import MIGRATIONS, SCHEMA_VERSION

T0 = 1_700_000_000.0
REVIEW_ID = re.compile(r"rev-[0-9a-f]{12}")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1  # every reading is a second later: items get distinct, ordered times
        return self.now


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path: Path):
    s: Store = SQLiteStore(tmp_path / "s.db") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


@pytest.fixture
def queue(store) -> ReviewQueue:
    return ReviewQueue(store, clock=Clock())


async def refund(queue: ReviewQueue, run_id: str = "run-1", priority: int = 0, amount: float = 20.0) -> ReviewItem:
    return await queue.add(
        run_id=run_id,
        agent="support",
        reason="refund is severity high",
        action="refund",
        arguments={"order_id": "1234", "amount": amount},
        priority=priority,
    )


def query(path: Path, sql: str) -> list[tuple]:
    """Read the file directly, not through the code under test."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


# --- the queue --------------------------------------------------------------------------------------------------


async def test_an_added_item_is_pending_with_a_short_typeable_id(queue):
    item = await refund(queue, priority=3)

    assert REVIEW_ID.fullmatch(item.id)
    assert (item.run_id, item.agent, item.action, item.priority) == ("run-1", "support", "refund", 3)
    assert item.arguments == {"order_id": "1234", "amount": 20.0}
    assert (item.status, item.decided_at, item.decided_by, item.note) == ("pending", None, None, "")
    assert item.created_at > T0
    assert await queue.get(item.id) == item
    assert await queue.pending() == [item]


async def test_pending_is_highest_priority_first_then_oldest_first(queue):
    low_old = await refund(queue, priority=0)
    high_new = await refund(queue, priority=5)
    low_new = await refund(queue, priority=0)
    high_old_later_added = await refund(queue, priority=5)

    assert [i.id for i in await queue.pending()] == [
        high_new.id,
        high_old_later_added.id,
        low_old.id,
        low_new.id,
    ]
    assert [i.id for i in await queue.pending(limit=2)] == [high_new.id, high_old_later_added.id]


async def test_approve_records_who_when_and_why_and_leaves_the_pending_list(queue):
    item = await refund(queue)
    other = await refund(queue, run_id="run-2")

    approved = await queue.approve(item.id, by="alice", note="customer verified")

    assert (approved.status, approved.decided_by, approved.note) == ("approved", "alice", "customer verified")
    assert approved.decided_at is not None and approved.decided_at > item.created_at
    assert await queue.get(item.id) == approved
    assert await queue.pending() == [other]
    assert await queue.items(status="approved") == [approved]


async def test_deny_is_a_decision_too(queue):
    item = await refund(queue)

    denied = await queue.deny(item.id, by="bob")

    assert (denied.status, denied.decided_by, denied.note) == ("denied", "bob", "")
    assert await queue.pending() == []
    assert await queue.items(status="denied") == [denied]


@pytest.mark.parametrize(("second", "verb"), [("approve", "approved"), ("deny", "denied")])
async def test_deciding_twice_is_refused_naming_the_first_decision(queue, second, verb):
    item = await refund(queue)
    first = await queue.approve(item.id, by="alice", note="ok")

    with pytest.raises(ReviewError) as caught:
        await getattr(queue, second)(item.id, by="mallory", note="overrule")

    message = str(caught.value)
    assert message.startswith(f"review item {item.id} was already approved by alice at ")
    assert "(note: ok)" in message and message.endswith(f"it cannot be {verb} now")
    assert await queue.get(item.id) == first, "the first decision stands unchanged"


async def test_an_unknown_id_is_a_clear_error(queue):
    await refund(queue)
    for attempt in (queue.get("rev-000000000000"), queue.approve("rev-000000000000", by="alice")):
        with pytest.raises(ReviewError, match="no review item 'rev-000000000000'"):
            await attempt
    with pytest.raises(ReviewError, match="no review item 'nope'"):
        await queue.deny("nope", by="alice")


@pytest.mark.parametrize("by", ["", "   ", None, 42])
async def test_a_decision_needs_who_made_it(queue, by):
    item = await refund(queue)

    with pytest.raises(ReviewError, match="`by` must be a non-empty name"):
        await queue.approve(item.id, by=by)

    assert (await queue.get(item.id)).status == "pending"


async def test_the_decider_name_is_trimmed(queue):
    item = await refund(queue)
    assert (await queue.deny(item.id, by="  alice \n")).decided_by == "alice"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reason": ""}, "reason must be a non-empty string"),
        ({"action": "  "}, "action must be a non-empty string"),
        ({"run_id": None}, "run_id must be a non-empty string"),
        ({"priority": True}, "priority must be a whole number, got True"),
        ({"priority": 1.5}, "priority must be a whole number, got 1.5"),
        ({"arguments": ["1234"]}, "arguments must be a mapping"),
    ],
)
async def test_bad_items_are_refused_before_anything_is_stored(queue, kwargs, message):
    fields = {"run_id": "run-1", "agent": "support", "reason": "r", "action": "refund", **kwargs}
    with pytest.raises(ReviewError, match=message):
        await queue.add(**fields)
    assert await queue.items() == []


async def test_bad_filters_are_a_clear_error(queue):
    with pytest.raises(ReviewError, match="status must be one of 'pending', 'approved', 'denied' or None"):
        await queue.items(status="done")
    with pytest.raises(ReviewError, match="limit must be a whole number above zero, got 0"):
        await queue.items(limit=0)


async def test_items_filter_by_run_and_list_pending_before_the_latest_decisions(queue):
    first = await refund(queue, run_id="run-1")
    second = await refund(queue, run_id="run-1")
    third = await refund(queue, run_id="run-1")
    elsewhere = await refund(queue, run_id="run-2", priority=9)
    await queue.approve(first.id, by="alice")
    await queue.deny(third.id, by="alice")

    assert [i.id for i in await queue.items(run_id="run-1")] == [second.id, third.id, first.id]
    assert [i.id for i in await queue.items()] == [elsewhere.id, second.id, third.id, first.id]
    assert await queue.items(run_id="run-3") == []


async def test_the_queue_keeps_its_own_copy_of_the_arguments(queue):
    arguments = {"order_id": "1234", "lines": [1, 2]}
    item = await queue.add(run_id="r", agent="a", reason="why", action="refund", arguments=arguments)
    arguments["lines"].append(3)
    (await queue.get(item.id)).arguments["order_id"] = "changed"

    assert (await queue.get(item.id)).arguments == {"order_id": "1234", "lines": [1, 2]}


def test_sync_twins_work_without_an_event_loop(tmp_path: Path):
    queue = ReviewQueue(open_store(tmp_path / "s.db"))
    item = queue.add_sync(run_id="run-1", agent="support", reason="why", action="answer", arguments={"text": "hi"})
    assert [i.id for i in queue.pending_sync()] == [item.id]
    assert queue.approve_sync(item.id, by="alice").status == "approved"
    assert queue.get_sync(item.id).decided_by == "alice"
    assert queue.items_sync(status="approved")[0].id == item.id
    other = queue.add_sync(run_id="run-1", agent="support", reason="why", action="answer")
    assert queue.deny_sync(other.id, by="bob", note="no").note == "no"
    queue.store.close()


async def test_sync_twins_refuse_a_running_loop(queue):
    with pytest.raises(ConfigError, match=r"pending_sync\(\) cannot be called from a running event loop"):
        queue.pending_sync()
    with pytest.raises(ConfigError, match=r"await queue.approve"):
        queue.approve_sync("rev-000000000000", by="alice")


# --- storage ----------------------------------------------------------------------------------------------------


async def test_items_persist_and_can_be_decided_from_another_store_object(tmp_path: Path):
    path = tmp_path / "s.db"
    writer = SQLiteStore(path)
    item = await refund(ReviewQueue(writer))
    writer.close()

    reader = SQLiteStore(path, create=False)
    assert await ReviewQueue(reader).pending() == [item]
    reader.close()
    decider = SQLiteStore(path)
    await ReviewQueue(decider).approve(item.id, by="alice")
    decider.close()
    assert query(path, "SELECT status, decided_by FROM reviews") == [("approved", "alice")]


async def test_a_decided_row_cannot_be_rewritten_even_by_hand(tmp_path: Path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    item = await refund(ReviewQueue(store))
    await ReviewQueue(store).deny(item.id, by="bob")
    store.close()

    with closing(sqlite3.connect(path)) as conn, pytest.raises(sqlite3.IntegrityError, match="decided review item"):
        conn.execute("UPDATE reviews SET status = 'approved', decided_by = 'mallory'")
    assert query(path, "SELECT status, decided_by FROM reviews") == [("denied", "bob")]


async def test_an_id_already_in_the_store_is_refused(store):
    item = ReviewItem("rev-000000000001", "run-1", "a", "why", "refund", created_at=T0)
    await store.add_review(item)
    with pytest.raises(StoreError):
        await store.add_review(item)


async def test_a_store_written_by_the_previous_schema_migrates_and_keeps_everything(tmp_path: Path):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)  # exactly what Keel wrote before the review queue: migrations are never edited
    conn.executescript(MIGRATIONS[0])
    conn.executescript(MIGRATIONS[1])
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO runs (run_id, agent, task, model, status, started_at) VALUES ('r1', 'a', 't', 'm', 'completed', 1)"
    )
    conn.execute("INSERT INTO events VALUES ('r1', 1, 'run_started', 'execution', '{\"task\": \"t\"}', 0, 0, 0, 0, 1)")
    conn.execute("INSERT INTO spend VALUES ('e1', 'global', 'r1', 1, 5000, 10, NULL)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match=f"schema version 2; run an agent on it .* version {SCHEMA_VERSION}"):
        SQLiteStore(path, create=False)  # a read-only open refuses rather than migrates

    store = SQLiteStore(path)
    assert SCHEMA_VERSION == 5
    assert query(path, "PRAGMA user_version") == [(5,)]
    assert (await store.get_run("r1")).status.value == "completed"
    assert [(e.seq, e.kind) for e in await store.events("r1")] == [(1, EventKind.RUN_STARTED)]
    assert query(path, "SELECT entry_id, key, nano_usd, tokens FROM spend") == [("e1", "global", 5000, 10)]
    item = await refund(ReviewQueue(store), run_id="r1")
    await store.append(Event("r1", 2, EventKind.ESCALATED, payload={"review_id": item.id}))
    store.close()

    reopened = SQLiteStore(path, create=False)
    assert await ReviewQueue(reopened).pending() == [item]
    assert len(await reopened.events("r1")) == 2
    reopened.close()


async def test_the_queue_lives_beside_runs_without_needing_one(store):
    await store.create_run(RunRecord("r1", "a", "t", "m"), Event("r1", 1, EventKind.RUN_STARTED))
    item = await refund(ReviewQueue(store), run_id="run-without-a-row")
    assert (await store.get_review(item.id)).run_id == "run-without-a-row"
    assert [r.run_id for r in await store.list_runs()] == ["r1"]


# --- across processes -------------------------------------------------------------------------------------------

DECIDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from keel.errors import ReviewError
    from keel.guardrails.review import ReviewQueue
    from keel.store import SQLiteStore

    path, worker, barrier, ids = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
    queue = ReviewQueue(SQLiteStore(path))
    (barrier / f"ready-{worker}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.001)
    for review_id in ids:  # every worker races for every item, in the same order
        decide = queue.approve_sync if int(worker) % 2 else queue.deny_sync
        try:
            item = decide(review_id, by=f"worker-{worker}")
            print("won", review_id, item.status, flush=True)
        except ReviewError as exc:
            print("lost", review_id, exc, flush=True)
    """
)


def test_processes_deciding_the_same_items_at_once_one_wins_each(tmp_path: Path):
    path, barrier = tmp_path / "shared.db", tmp_path / "barrier"
    barrier.mkdir()
    setup = SQLiteStore(path)
    queue = ReviewQueue(setup)
    ids = [asyncio.run(refund(queue, run_id=f"run-{n}")).id for n in range(30)]
    setup.close()
    workers = 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDER, str(path), str(w), str(barrier), *ids],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < workers:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.01)
    (barrier / "go").touch()

    lines: list[list[str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        lines += [line.split(" ", 2) for line in out.splitlines()]

    assert len(lines) == workers * len(ids), "every worker tried every item and got an answer"
    stored = {i: (s, by) for i, s, by in query(path, "SELECT id, status, decided_by FROM reviews")}
    winners: dict[str, list[str]] = {review_id: [] for review_id in ids}
    for outcome, review_id, rest in lines:
        if outcome == "won":
            winners[review_id].append(rest)
        else:
            status, by = stored[review_id]
            assert rest.startswith(f"review item {review_id} was already {status} by {by} at "), rest
    assert all(len(won) == 1 for won in winners.values()), winners
    assert all(stored[review_id][0] == won[0] for review_id, won in winners.items())
    # Which worker wins is up to the scheduler (one worker may win them all); exactly one per item is the point.
