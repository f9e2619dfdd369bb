"""Encryption at rest of journaled content: sealed with the operator's key, metadata in clear, nothing lost."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel import Agent, Escalation, ReviewQueue, RunStatus, open_store, tool
from keel.errors import ConfigError, JournalKeyError
from keel.journal import Event, EventKind
from keel.store import Store, new_journal_key
from keel.store.base import ReviewItem, RunRecord
from keel.testing import ScriptedModel, call, reply

POSTGRES = os.environ.get("KEEL_TEST_POSTGRES_URL", "")
KEY, OTHER = new_journal_key(), new_journal_key()
TASK = "Refund order A-77 for Ana Pérez, card ending 4242"
ANSWER = "Refunded A-77: 31.50 EUR back to Ana Pérez"
ORDER = "order A-77: Ana Pérez, Calle Mayor 5, Madrid"


@tool(trusted=True, cache_ttl=60)
def get_order(order_id: str) -> str:
    """Look up an order."""
    return ORDER


@tool(severity="high", side_effects=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    return f"refunded {amount} on {order_id}"


def agent(store: Store | None) -> Agent:
    model = ScriptedModel(
        [call("get_order", order_id="A-77"), call("refund", order_id="A-77", amount=31.5), reply(ANSWER)],
        usage=(100, 20),
    )
    return Agent("desk", model, tools=[get_order, refund], escalation=Escalation(severity="high"), store=store)


Opener = Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgres"])
def at_rest(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Opener, Callable[[], str]]]:
    """Opens the same durable store with a given key, and dumps everything it keeps as text (what a disk shows)."""
    if request.param == "sqlite":
        path = tmp_path / "keel.db"

        def dump() -> str:
            with sqlite3.connect(path) as conn:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                return "\n".join(repr(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}"))

        yield (lambda **key: open_store(path, **key)), dump
        return
    if not POSTGRES:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set: no PostgreSQL server")
    psycopg = pytest.importorskip("psycopg")
    from keel.store.postgres import PostgresStore

    schema = f"keel_test_{uuid.uuid4().hex[:12]}"
    opened: list[Store] = []

    def open_(**key: str) -> Store:
        opened.append(PostgresStore(POSTGRES, schema=schema, **key))
        return opened[-1]

    def dump_pg() -> str:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
            return "\n".join(
                repr(row) for (t,) in tables for row in conn.execute(f'SELECT * FROM "{schema}"."{t}"').fetchall()
            )

    yield open_, dump_pg
    for store in opened:
        store.close()
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def paused_then_resumed(store: Store) -> tuple[str, RunStatus, object]:
    desk = agent(store)
    paused = desk.run_sync(TASK)
    assert paused.status is RunStatus.ESCALATED
    queue = ReviewQueue(store)
    [item] = queue.pending_sync(run_id=paused.run_id)
    assert item.arguments == {"order_id": "A-77", "amount": 31.5}  # the reviewer reads it in clear
    queue.approve_sync(item.id, by="ana", note="ok for Ana Pérez")
    done = desk.resume_sync(paused.run_id)
    return paused.run_id, done.status, done.output


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_encrypted_run_pauses_resumes_and_reads_back_whole(kind: str, tmp_path: Path) -> None:
    url = "memory://" if kind == "memory" else str(tmp_path / "keel.db")
    store = open_store(url, encryption_key=KEY)
    run_id, status, output = paused_then_resumed(store)
    assert (status, output) == (RunStatus.COMPLETED, ANSWER)
    row = asyncio.run(store.get_run(run_id))
    events = asyncio.run(store.events(run_id))
    assert row.task == TASK and row.output == ANSWER
    assert events[0].payload["task"] == TASK
    assert any(e.payload.get("result") == ORDER for e in events)


def test_content_is_sealed_at_rest_and_metadata_stays_in_clear(at_rest: tuple[Opener, Callable[[], str]]) -> None:
    open_, dump = at_rest
    run_id, status, output = paused_then_resumed(open_(encryption_key=KEY))
    assert (status, output) == (RunStatus.COMPLETED, ANSWER)
    kept = dump()
    for content in ("Ana P", "A-77", "Calle Mayor", "31.5", "4242", "refunded"):
        assert content not in kept, content
    for metadata in (run_id, "tool_called", "get_order", "refund", "completed", "keel-sealed:v1:"):
        assert metadata in kept, metadata


def test_without_the_key_content_is_a_clear_error_metadata_still_reads_and_nothing_is_lost(
    at_rest: tuple[Opener, Callable[[], str]],
) -> None:
    open_, _ = at_rest
    run_id, _, _ = paused_then_resumed(open_(encryption_key=KEY))
    for keys in ({}, {"encryption_key": OTHER}):
        store = open_(**keys)
        with pytest.raises(JournalKeyError, match="KEEL_JOURNAL_KEY"):
            asyncio.run(store.get_run(run_id))
        with pytest.raises(JournalKeyError, match="encrypted with journal key"):
            asyncio.run(store.events(run_id))
        with pytest.raises(JournalKeyError):
            agent(store).resume_sync(run_id)
        assert asyncio.run(store.count_runs()) == 1
        assert any(r.metric == "runs_finished" for r in asyncio.run(store.rollups(bucket_s=0)))
    again = open_(encryption_key=KEY)
    assert asyncio.run(again.get_run(run_id)).task == TASK
    assert asyncio.run(again.events(run_id))[-1].payload["output"] == ANSWER


def test_keys_rotate_newest_first_and_old_runs_still_open(at_rest: tuple[Opener, Callable[[], str]]) -> None:
    open_, _ = at_rest
    old_run, _, _ = paused_then_resumed(open_(encryption_key=KEY))
    rotated = open_(encryption_key=f"{OTHER},{KEY}")
    new_run = agent(rotated).run_sync("a new task for Bea").run_id
    assert asyncio.run(rotated.get_run(old_run)).task == TASK
    only_new = open_(encryption_key=[OTHER])
    assert asyncio.run(only_new.get_run(new_run)).task == "a new task for Bea"
    with pytest.raises(JournalKeyError):
        asyncio.run(only_new.get_run(old_run))


def test_a_store_written_without_a_key_keeps_working_once_a_key_is_given(
    at_rest: tuple[Opener, Callable[[], str]],
) -> None:
    open_, dump = at_rest
    clear_run, _, _ = paused_then_resumed(open_())
    assert "Calle Mayor" in dump()
    sealed = open_(encryption_key=KEY)
    assert asyncio.run(sealed.get_run(clear_run)).task == TASK
    sealed_run = agent(sealed).run_sync("second task for Bea").run_id
    assert [r.run_id for r in asyncio.run(sealed.list_runs())] == [sealed_run, clear_run]
    assert "second task for Bea" not in dump()


def test_a_sealed_value_moved_to_another_run_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    store = open_store(path, encryption_key=KEY)
    first = agent(store).run_sync("first task").run_id
    second = agent(store).run_sync("second task").run_id
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE runs SET task = (SELECT task FROM runs WHERE run_id = ?) WHERE run_id = ?", (first, second)
        )
    with pytest.raises(JournalKeyError, match="altered or moved"):
        asyncio.run(open_store(path, encryption_key=KEY).get_run(second))


def test_each_content_field_of_runs_and_reviews_is_sealed_and_reads_back_and_empty_ones_stay_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keel.db"
    store = open_store(path, encryption_key=KEY)
    full = RunRecord("r1", "desk", TASK, "m", output={"to": "Ana"}, report={"done": ["Calle"]}, reason="for Ana")
    bare = RunRecord("r2", "desk", "", "m")  # no output, report nor reason yet, and an empty task
    for run in (full, bare):
        asyncio.run(store.create_run(run, Event(run.run_id, 1, EventKind.RUN_STARTED)))
    item = ReviewItem("rev-1", "r1", "desk", "refund for Ana", "refund", {"who": "Ana"}, note="Ana called")
    asyncio.run(store.add_review(item))
    asyncio.run(store.add_review(ReviewItem("rev-2", "r2", "desk", "", "refund")))

    assert asyncio.run(store.get_run("r1")) == full and asyncio.run(store.get_run("r2")) == bare
    assert asyncio.run(store.get_review("rev-1")) == item
    assert asyncio.run(store.get_review("rev-2")).reason == ""
    with sqlite3.connect(path) as conn:
        task, output, report, reason = conn.execute("SELECT task, output, report, reason FROM runs").fetchone()
        reviews = conn.execute("SELECT reason, arguments, note FROM reviews ORDER BY id").fetchall()
    assert all("keel-sealed:v1:" in str(v) and "Ana" not in str(v) for v in (task, output, report, reason))
    assert all("keel-sealed:v1:" in str(v) and "Ana" not in str(v) for v in reviews[0])
    assert reviews[1][0] == "" and reviews[1][2] == "", "an empty text has nothing to hide"


def test_cached_tool_results_are_sealed_too(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    paused_then_resumed(open_store(path, encryption_key=KEY))
    with sqlite3.connect(path) as conn:
        values = [row[0] for row in conn.execute("SELECT value FROM cache")]
    assert values and all(v.startswith("keel-sealed:v1:") and "Calle" not in v for v in values)


def test_the_key_comes_from_keel_journal_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_JOURNAL_KEY", KEY)
    monkeypatch.setenv("KEEL_STORE", str(tmp_path / "env.db"))
    result = agent(None).run_sync(TASK)  # no store given: the agent opens KEEL_STORE
    with sqlite3.connect(tmp_path / "env.db") as conn:
        assert conn.execute("SELECT task FROM runs").fetchone()[0].startswith("keel-sealed:v1:")
    assert result.events[0].payload["task"] == TASK


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", KEY[:-4]])
def test_a_malformed_key_is_a_config_error_that_never_shows_the_key(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="32 bytes") as caught:
        open_store(tmp_path / "keel.db", encryption_key=f"{KEY},{bad}")
    assert bad not in str(caught.value) and KEY not in str(caught.value)
    assert "#2" in str(caught.value)
