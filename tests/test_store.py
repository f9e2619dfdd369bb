import asyncio
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keel import Event, EventKind, Phase, RunStatus, open_store
from keel.errors import ConfigError, StoreError, StoreNotFoundError, StoreVersionError, UnknownRunError
from keel.store import MemoryStore, RunRecord, SQLiteStore, Store
from keel.store._migrations import SCHEMA_VERSION


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path: Path):
    s: Store = SQLiteStore(tmp_path / "s.db") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


def run_record(run_id: str, **kw) -> RunRecord:
    return RunRecord(run_id=run_id, agent=kw.pop("agent", "a"), task="t", model="m", started_at=kw.pop("t", 1.0), **kw)


def started(run_id: str) -> Event:
    return Event(run_id, 1, EventKind.RUN_STARTED)


async def test_runs_and_journals_round_trip(store):
    await store.create_run(
        run_record("r1", session_id="s1"), Event("r1", 1, EventKind.RUN_STARTED, Phase.EXECUTION, {"task": "héllo"})
    )
    await store.append(Event("r1", 2, EventKind.MODEL_CALLED, Phase.ROUTING, {"text": "x"}, 10, 5, 0.001, 12.5, ts=2.0))
    events = await store.events("r1")
    assert [(e.seq, e.kind, e.phase) for e in events[:2]] == [
        (1, EventKind.RUN_STARTED, Phase.EXECUTION),
        (2, EventKind.MODEL_CALLED, Phase.ROUTING),
    ]
    assert events[0].payload == {"task": "héllo"}
    assert (events[1].tokens_in, events[1].tokens_out, events[1].cost_usd, events[1].latency_ms) == (10, 5, 0.001, 12.5)

    done = run_record("r1", session_id="s1", status=RunStatus.PARTIAL, steps=3, input_tokens=10, output_tokens=5)
    done.output, done.report, done.reason, done.finished_at = {"a": 1}, {"reason": "max_steps"}, "max_steps", 3.0
    await store.finish_run(done, Event("r1", 3, EventKind.RUN_FINISHED, payload={"status": "partial"}))
    row = await store.get_run("r1")
    assert (row.status, row.steps, row.total_tokens, row.output, row.report) == (
        RunStatus.PARTIAL,
        3,
        15,
        {"a": 1},
        {"reason": "max_steps"},
    )


async def test_list_runs_is_newest_first_and_filters(store):
    await store.create_run(run_record("old", agent="a", t=1.0, session_id="s1"), started("old"))
    await store.create_run(run_record("new", agent="b", t=2.0, session_id="s1"), started("new"))
    await store.create_run(
        run_record("other", agent="a", t=3.0, session_id="s2", status=RunStatus.FAILED), started("other")
    )
    assert [r.run_id for r in await store.list_runs()] == ["other", "new", "old"]
    assert [r.run_id for r in await store.list_runs(limit=1)] == ["other"]
    assert [r.run_id for r in await store.list_runs(agent="a")] == ["other", "old"]
    assert [r.run_id for r in await store.list_runs(session_id="s1")] == ["new", "old"]
    assert [r.run_id for r in await store.list_runs(status=RunStatus.FAILED)] == ["other"]


async def test_a_run_row_never_exists_without_its_first_event(store):
    await store.create_run(run_record("r1"), started("r1"))
    with pytest.raises(StoreError):
        await store.create_run(run_record("r1"), started("r1"))
    assert len(await store.events("r1")) == 1
    if isinstance(store, SQLiteStore):
        # A failing first event rolls the row back too.
        with pytest.raises(StoreError):
            await store.create_run(run_record("r2"), Event("r1", 1, EventKind.RUN_STARTED))
        with pytest.raises(UnknownRunError):
            await store.get_run("r2")


async def test_unknown_runs_are_a_clear_error(store):
    with pytest.raises(UnknownRunError, match="no run 'ghost'"):
        await store.get_run("ghost")
    with pytest.raises(UnknownRunError):
        await store.events("ghost")


async def test_the_journal_is_append_only(store):
    await store.create_run(run_record("r1"), started("r1"))
    with pytest.raises(StoreError):
        await store.append(Event("r1", 1, EventKind.RUN_FINISHED))


def test_sqlite_refuses_to_rewrite_history(tmp_path: Path):
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO events VALUES ('r', 1, 'run_started', 'execution', '{}', 0, 0, 0, 0, 0)")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET kind = 'run_finished'")


def test_sqlite_uses_wal_and_records_its_schema_version(tmp_path: Path):
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    SQLiteStore(path).close()  # reopening an up-to-date store migrates nothing


def test_a_store_from_a_newer_keel_is_refused(tmp_path: Path):
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreVersionError, match="upgrade keel-agents"):
        SQLiteStore(path)


def test_a_store_path_that_cannot_be_a_file_is_a_clear_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="KEEL_STORE"):
        SQLiteStore(blocker / "keel.db")
    directory = tmp_path / "adir"
    directory.mkdir()
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore(directory)


def test_open_store_reads_urls_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "a.db"
    monkeypatch.setenv("KEEL_STORE", str(tmp_path / "env.db"))
    env_store = open_store()
    assert isinstance(env_store, SQLiteStore) and env_store.path == tmp_path / "env.db"
    monkeypatch.delenv("KEEL_STORE")
    monkeypatch.chdir(tmp_path)
    default = open_store()
    assert isinstance(default, SQLiteStore) and default.path == Path(".keel/keel.db")
    assert (tmp_path / ".keel" / "keel.db").exists()
    with pytest.raises(ConfigError, match="unsupported store URL scheme 'mongodb'"):
        open_store("mongodb://x")


NO_STORE_YET = "yet: run an agent first, or point KEEL_STORE/--store at an existing store"


def test_sqlite_without_create_opens_only_an_existing_store(tmp_path: Path):
    path = tmp_path / "sub" / "s.db"
    with pytest.raises(
        StoreNotFoundError, match=f"no store at {re.escape(str(path))} {re.escape(NO_STORE_YET)}"
    ) as info:
        SQLiteStore(path, create=False)
    assert info.value.path == str(path)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its directory

    writer = SQLiteStore(path)
    asyncio.run(writer.create_run(run_record("r1"), started("r1")))
    writer.close()
    reader = SQLiteStore(path, create=False)
    assert [r.run_id for r in asyncio.run(reader.list_runs())] == ["r1"]
    reader.close()

    with pytest.raises(StoreError, match="cannot open the store"):  # there, but not a database file
        SQLiteStore(tmp_path, create=False)


def test_open_store_without_create(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KEEL_STORE")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=re.escape(f"no store at {Path('.keel/keel.db')} {NO_STORE_YET}")):
        open_store(create=False)
    with pytest.raises(StoreError, match="no store at"):
        open_store("sqlite:///elsewhere/keel.db", create=False)
    monkeypatch.setenv("KEEL_STORE", str(tmp_path / "env.db"))
    with pytest.raises(StoreError, match="env.db yet"):
        open_store(create=False)
    assert list(tmp_path.iterdir()) == []
    assert isinstance(open_store("memory://", create=False), MemoryStore)
    with pytest.raises(ConfigError, match="unsupported store URL scheme"):  # a bad URL is still a bad URL
        open_store("mongodb://x", create=False)

    open_store().close()
    existing = open_store(create=False)
    assert isinstance(existing, SQLiteStore) and existing.path == tmp_path / "env.db"
    existing.close()


CRASHING_RUN = textwrap.dedent(
    """
    import os, sys
    from keel import Agent, tool
    from keel.testing import ScriptedModel, call, reply

    @tool
    def lookup(order_id: str) -> str:
        '''Look up an order.'''
        return "shipped"

    @tool
    def crash() -> str:
        '''The process dies here, mid-run.'''
        os._exit(17)

    model = ScriptedModel([call("lookup", order_id="1"), call("crash"), reply("never")])
    Agent("crashy", model, tools=[lookup, crash], store=sys.argv[1]).run_sync("go")
    """
)


def test_events_survive_a_process_that_dies_mid_run(tmp_path: Path):
    path = tmp_path / "crash.db"
    proc = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(path)], timeout=60, capture_output=True)
    assert proc.returncode == 17, proc.stderr.decode()
    store = SQLiteStore(path)
    (run,) = asyncio.run(store.list_runs())
    assert run.status is RunStatus.RUNNING

    events = asyncio.run(store.events(run.run_id))
    assert [e.kind.value for e in events] == [
        "run_started",
        "model_called",
        "tool_called",
        "checkpoint",
        "model_called",
    ]
    assert events[2].payload["result"] == "shipped"


CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    from keel import Agent, tool
    from keel.testing import ScriptedModel, call, reply

    @tool
    def lookup(order_id: str) -> str:
        '''Look up an order.'''
        return "shipped"

    for i in range(int(sys.argv[2])):
        model = ScriptedModel([call("lookup", order_id=str(i)), reply("done")])
        assert Agent("w", model, tools=[lookup], store=sys.argv[1]).run_sync("go").ok
    """
)


def test_several_processes_share_one_sqlite_file(tmp_path: Path):
    path = tmp_path / "shared.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(path), "25"], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    store = SQLiteStore(path)
    runs = asyncio.run(store.list_runs(limit=1000))
    assert len(runs) == 100 and {r.status for r in runs} == {RunStatus.COMPLETED}
    for run in runs:
        events = asyncio.run(store.events(run.run_id))
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
        assert events[-1].kind is EventKind.RUN_FINISHED


async def test_a_finished_run_keeps_its_start_time(store):
    from keel import Agent
    from keel.testing import ScriptedModel, reply

    result = await Agent("a", ScriptedModel([reply("hi")]), store=store).run("x")
    row = await store.get_run(result.run_id)
    assert row.started_at > 0 and row.finished_at >= row.started_at


def test_a_read_only_open_changes_nothing(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="not a Keel store"):
        SQLiteStore(empty, create=False)
    assert empty.stat().st_size == 0, "a read-only open must not migrate someone else's file"

    path = tmp_path / "s.db"
    writer = SQLiteStore(path)
    asyncio.run(writer.create_run(run_record("r1"), started("r1")))
    writer.close()
    before = path.read_bytes()
    reader = SQLiteStore(path, create=False)
    assert [r.run_id for r in asyncio.run(reader.list_runs())] == ["r1"]
    with pytest.raises(StoreError):
        asyncio.run(reader.create_run(run_record("r2"), started("r2")))
    reader.close()
    assert path.read_bytes() == before


async def test_finishing_an_unknown_run_writes_nothing(store):
    with pytest.raises(UnknownRunError):
        await store.finish_run(run_record("ghost"), Event("ghost", 2, EventKind.RUN_FINISHED))
    await store.create_run(run_record("ghost"), started("ghost"))
    assert [e.seq for e in await store.events("ghost")] == [1], "no orphan event was left behind"
