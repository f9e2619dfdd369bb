"""Token accounting over runs (O3): `usage_report` and ``keel usage``, by phase, model and agent."""

import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keel import Agent, Budget, tool
from keel.cli.main import app
from keel.cli.usage import parse_since
from keel.errors import ModelError
from keel.observe import usage_report
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, fail, reply


@tool(trusted=True)
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@tool(trusted=True, cost_usd=0.01)
def credit_check(customer: str) -> str:
    """A paid credit bureau lookup."""
    return "good"


def agent_for(store, name: str, script, **kwargs) -> Agent:
    model = ScriptedModel(script, usage=(100, 20), price=(1.0, 2.0), name=kwargs.pop("model_name", "test:small"))
    return Agent(name, model, tools=[get_order, credit_check], store=store, guards=[], **kwargs)


async def run(store, name: str, script, *, session: str | None = None, **kwargs):
    return await agent_for(store, name, script, **kwargs).run("go", session_id=session)


@pytest.fixture
def store(tmp_path: Path):
    opened = SQLiteStore(tmp_path / "keel.db")
    yield opened
    opened.close()


async def test_a_report_sums_runs_by_phase_model_and_agent_as_the_runs_themselves_do(store) -> None:
    first = await run(
        store, "desk", [call("get_order", order_id="1"), call("credit_check", customer="c"), reply("ok")], session="s1"
    )
    second = await run(
        store, "triage", [call("get_order", order_id="x"), reply("done")], session="s2", model_name="test:big"
    )

    report = await usage_report(store)
    assert report.runs == 2 and not report.truncated
    total = report.total
    assert total.total_tokens == first.usage.total_tokens + second.usage.total_tokens
    assert total.cost_usd == pytest.approx(first.usage.cost_usd + second.usage.cost_usd)
    assert total.tool_calls == 3 and total.requests == 5
    assert set(report.by_model) == {"test:small", "test:big"} and report.by_model["test:big"].requests == 2
    assert report.by_agent["desk"].cost_usd == pytest.approx(first.usage.cost_usd)  # the paid lookup included
    assert total.by_phase["execution"].requests == 5

    only_s1 = await usage_report(store, session_id="s1")
    assert only_s1.runs == 1 and only_s1.total.total_tokens == first.usage.total_tokens
    assert (await usage_report(store, agent="triage")).total.requests == 2
    assert (await usage_report(store, since=time.time() + 60)).runs == 0


async def test_retries_and_the_best_effort_answer_show_as_their_own_phases(store) -> None:
    flaky = [fail(ModelError("503", retryable=True)), call("get_order", order_id="1")] + [
        call("get_order", order_id="1")
    ] * 3
    await run(store, "desk", [*flaky, reply("Order 1 shipped.")], budget=Budget(max_steps=4))

    phases = (await usage_report(store)).total.by_phase
    assert phases["recovery"].requests >= 1 and phases["summarization"].requests == 1


def test_keel_usage_prints_phases_models_and_totals(store, tmp_path: Path) -> None:
    agent_for(store, "desk", [call("get_order", order_id="1"), reply("ok")]).run_sync("go", session_id="s1")
    result = CliRunner().invoke(
        app, ["usage", "--store", str(tmp_path / "keel.db"), "--since", "1h"], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "1 runs since 1h, by phase" in result.stdout
    assert "execution" in result.stdout and "test:small" in result.stdout and "total" in result.stdout

    as_json = CliRunner().invoke(app, ["usage", "--store", str(tmp_path / "keel.db"), "--session", "s1", "--json"])
    data = json.loads(as_json.stdout)
    assert data["runs"] == 1 and data["total"]["total_tokens"] == 240 and "execution" in data["total"]["by_phase"]


def test_keel_usage_on_no_runs_and_bad_durations(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["usage", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 0 and "no runs yet" in missing.stdout
    bad = CliRunner().invoke(app, ["usage", "--since", "yesterday", "--store", str(tmp_path / "none.db")])
    assert bad.exit_code == 2 and "not a duration" in bad.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("1.5h", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert time.time() - parse_since(text) == pytest.approx(seconds, abs=5)
    with pytest.raises(typer.BadParameter):
        parse_since(text.replace(text[-1], "w"))
