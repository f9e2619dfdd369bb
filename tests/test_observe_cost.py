"""The cost report (`keel.observe.cost`, ``keel cost``): spend by agent, model, tier and phase, and the savings."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel import Agent, tool
from keel.cli.main import app
from keel.cost.tiers import ModelTiers
from keel.observe.cost import cost_report
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, reply

SMALL, LARGE = (0.15, 0.60), (2.50, 10.00)


@tool(cache_ttl=60, cost_usd=0.01)
def geocode(address: str) -> str:
    """A paid geocoding API (cacheable)."""
    return "52.37,4.90"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "keel.db")
    for _ in range(2):  # the second run's geocode comes from the cache
        tiers = ModelTiers(
            small=ScriptedModel([call("geocod", address="Dam 1"), reply("here")], price=SMALL, name="test:small"),
            large=ScriptedModel([call("geocode", address="Dam 1")], price=LARGE, name="test:large"),
        )
        Agent("maps", tiers, tools=[geocode], store=store).run_sync("Where is Dam 1?")
    Agent("plain", ScriptedModel([reply("hi")], price=LARGE, name="test:large"), store=store).run_sync("hi")
    store.close()
    return tmp_path / "keel.db"


async def test_the_report_splits_spend_and_prices_tiered_calls_on_the_large_model(db: Path) -> None:
    store = SQLiteStore(db)
    report = await cost_report(store)
    store.close()
    small_call, large_call = (100 * 0.15 + 20 * 0.6) / 1e6, (100 * 2.5 + 20 * 10) / 1e6
    assert report.runs == 3
    assert set(report.by_agent) == {"maps", "plain"} and report.by_agent["plain"].cost_usd == pytest.approx(large_call)
    assert report.by_tier["small"].calls == 4 and report.by_tier["large"].calls == 2
    assert report.by_tier["untiered"].calls == 1
    assert report.by_model["tool:geocode"].cost_usd == pytest.approx(0.01)  # the second run's came from the cache
    assert report.cache_hits == 1 and report.cache_saved_usd == pytest.approx(0.01)
    assert report.tiered_cost_usd == pytest.approx(4 * small_call + 2 * large_call)
    # the two small calls that fell short are not in the baseline: a large-only run would not have made them
    assert report.tiered_baseline_usd == pytest.approx(4 * large_call)
    assert report.tiering_saving_pct == pytest.approx(1 - (4 * small_call + 2 * large_call) / (4 * large_call))


def test_keel_cost_prints_the_report_and_json(db: Path) -> None:
    shown = CliRunner().invoke(app, ["cost", "--since", "1h", "--store", str(db)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "by tier" in shown.stdout and "caches: 1 hits saved $0.010000" in shown.stdout
    assert "on the large model alone at list price" in shown.stdout
    data = json.loads(CliRunner().invoke(app, ["cost", "--json", "--store", str(db)]).stdout)
    assert data["runs"] == 3 and data["tiering_saving_pct"] > 0.3
    empty = CliRunner().invoke(app, ["cost", "--agent", "nobody", "--store", str(db)])
    assert empty.exit_code == 0 and "no runs" in empty.stdout
