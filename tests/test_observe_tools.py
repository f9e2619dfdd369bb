"""The tool-call log (O2): `tool_calls`, `tool_stats` and ``keel tools``: every attempt, redacted, filterable."""

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel import Agent, Event, RetryPolicy, tool
from keel.cli.main import app
from keel.journal import EventKind
from keel.observe import tool_calls, tool_stats
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, reply

failures: list[int] = []


@tool(trusted=True)
def find_customer(email: str) -> dict[str, str]:
    """Find a customer by email."""
    return {"name": "Jane Doe", "email": email, "card": "4111 1111 1111 1111"}


@tool(trusted=True, cost_usd=0.002)
def geocode(address: str) -> str:
    """A paid geocoding API that fails once."""
    failures.append(1)
    if len(failures) == 1:
        raise ConnectionError("geocoder reset")
    return "52.37,4.90"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "keel.db")
    failures.clear()
    fast = RetryPolicy(max_attempts=2, initial_delay_s=0)
    geocode_retried = tool(trusted=True, cost_usd=0.002, retry=fast, name="geocode")(geocode.function)
    script = [call("find_customer", email="jane@example.com"), call("geocode", address="Dam 1"), reply("ok")]
    Agent("desk", ScriptedModel(script), tools=[find_customer, geocode_retried], store=store, guards=[]).run_sync("go")
    Agent("other", ScriptedModel([call("find_customer", email="x@y.org"), reply("ok")]), tools=[find_customer],
          store=store, guards=[]).run_sync("go")  # fmt: skip
    store.close()
    return tmp_path / "keel.db"


async def test_every_attempt_is_listed_newest_first_with_its_figures_and_redacted(db: Path) -> None:
    store = SQLiteStore(db)
    try:
        records = await tool_calls(store)
        assert [r.tool for r in records] == ["find_customer", "geocode", "geocode", "find_customer"]
        ok, failed = records[1], records[2]
        assert (failed.attempt, failed.outcome, ok.attempt, ok.outcome) == (1, "error", 2, "ok")
        assert failed.cost_usd == ok.cost_usd == pytest.approx(0.002) and "geocoder reset" in failed.result
        lookup = records[3]
        assert "jane@example.com" not in lookup.arguments + lookup.result and "[email]" in lookup.arguments
        assert "4111" not in lookup.result and "[payment_card]" in lookup.result
        assert [r.agent for r in await tool_calls(store, agent="other")] == ["other"]
        assert [r.attempt for r in await tool_calls(store, tool="geocode", outcome="error")] == [1]
        assert await tool_calls(store, since=time.time() + 60) == []

        [geo, find] = sorted(tool_stats(records), key=lambda s: s.tool)[::-1]
        assert (geo.tool, geo.attempts, geo.failures) == ("geocode", 2, 1) and geo.cost_usd == pytest.approx(0.004)
        assert (find.attempts, find.failures) == (2, 0) and find.p95_ms >= find.p50_ms >= 0
    finally:
        store.close()


def test_keel_tools_lists_and_filters_calls(db: Path) -> None:
    shown = CliRunner().invoke(app, ["tools", "--since", "1h", "--store", str(db)], env={"COLUMNS": "220"})
    assert shown.exit_code == 0, shown.output
    assert "geocode" in shown.stdout and "by tool" in shown.stdout and "jane@example.com" not in shown.stdout

    as_json = CliRunner().invoke(app, ["tools", "--tool", "geocode", "--json", "--store", str(db)])
    assert [c["outcome"] for c in json.loads(as_json.stdout)] == ["ok", "error"]

    none = CliRunner().invoke(app, ["tools", "--outcome", "timeout", "--store", str(db)])
    assert none.exit_code == 0 and "no tool calls match" in none.stdout


async def test_a_tool_result_served_from_a_cache_is_listed_as_cached_not_as_an_attempt(db: Path) -> None:
    store = SQLiteStore(db)
    try:
        run = (await store.list_runs(agent="other"))[0]
        last = (await store.events(run.run_id))[-1].seq
        hit = {"key": "k1", "saved_tokens": 0, "saved_cost_usd": 0.002, "tool": "geocode", "call_id": "c9",
               "arguments": {"address": "Dam 1"}, "result": "52.37,4.90"}  # fmt: skip
        await store.append(Event(run.run_id, last + 1, EventKind.CACHE_HIT, payload=hit, latency_ms=0.2))
        cached = await tool_calls(store, tool="geocode", agent="other")
        assert [(r.cache_hit, r.outcome, r.result) for r in cached] == [(True, "ok", "52.37,4.90")]
        (geo,) = tool_stats(cached)
        assert (geo.cache_hits, geo.attempts) == (1, 0)
    finally:
        store.close()


def test_keel_tools_shows_a_cache_hit_as_cached(db: Path) -> None:
    store = SQLiteStore(db)
    run = asyncio.run(store.list_runs(agent="other"))[0]
    last = asyncio.run(store.events(run.run_id))[-1].seq
    hit = {"key": "k1", "tool": "find_customer", "call_id": "c9", "arguments": {}, "result": "{}"}
    asyncio.run(store.append(Event(run.run_id, last + 1, EventKind.CACHE_HIT, payload=hit)))
    store.close()
    shown = CliRunner().invoke(app, ["tools", "--agent", "other", "--store", str(db)], env={"COLUMNS": "220"})
    assert "cached" in shown.stdout


def test_keel_trace_never_shows_personal_data_in_clear(db: Path) -> None:
    store = SQLiteStore(db)
    run_id = asyncio.run(store.list_runs(agent="desk"))[0].run_id
    store.close()
    for extra in ([], ["--json"]):
        shown = CliRunner().invoke(app, ["trace", run_id, *extra, "--store", str(db)], env={"COLUMNS": "220"})
        assert shown.exit_code == 0, shown.output
        assert "jane@example.com" not in shown.stdout and "4111 1111 1111 1111" not in shown.stdout
        assert "[email]" in shown.stdout
