"""``keel demo``: each of the article's four production failures happens again and Keel stops it, then a live run."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.main import app

runner = CliRunner()
RUN_ID = re.compile(r"run-[0-9a-f]{16}")


def demo(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["demo", "--scripted", *args], env={"COLUMNS": "200", **(env or {})})


def test_each_week_is_replayed_and_stopped_then_the_totals(tmp_path: Path) -> None:
    result = demo("--store", str(tmp_path / "keel.db"))
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "scripted to misbehave (keel.testing.ScriptedModel)" in out
    # week 1: a hallucinated tool, rejected against the registry, bounded
    assert "3 calls to 'check_warehouse_stock' rejected against the agent's tools" in out
    assert "too many rejected tool calls (3, max_tool_rejections=3)" in out
    # week 2: the 47-step plan stopped by the loop detector, with a best-effort answer
    assert (
        "loop detector: nudge, break" in out
        and "a best-effort answer from what was done: Order A-1002 is delayed" in out
    )
    # week 3: the money refused before it was spent, by the request's budget, then the hourly limit
    assert "refused by the request's budget (max_cost_usd=5.0)" in out
    assert "refused by the hourly spending limit (per_hour_usd=6.0 for this session)" in out
    assert re.search(r"\$4\.6536 spent, where the model's calls would have cost \$204\.0000", out)
    # week 4: only the refund waits; approved as a person would; it runs once
    assert "only the high-severity action waits for a person" in out and "--by demo-operator" in out
    assert "the refund ran exactly once (1 refund issued)" in out
    # then the live desk, and the totals with the commands to look deeper
    assert "Live · the support desk" in out and "completed — answered" in out
    assert "In all: 6 runs" in out
    assert "Stopped by Keel: 3 hallucinated tool calls rejected · 1 loop broken" in out
    assert "keel dashboard" in out
    live = RUN_ID.findall(result.stdout)[-1]
    assert f"keel trace {live} --store" in result.stdout


def test_a_terminal_without_colour_gets_plain_text(tmp_path: Path) -> None:
    result = demo("--store", str(tmp_path / "keel.db"), env={"NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0 and "\x1b[" not in result.stdout


def test_a_directory_where_the_store_cannot_be_made_names_keel_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEEL_STORE", raising=False)
    (tmp_path / ".keel").write_text("a file where the store's directory should be")
    result = runner.invoke(app, ["demo", "--scripted"])
    assert result.exit_code != 0 and "KEEL_STORE" in result.output and "Traceback" not in result.output


def test_ctrl_c_stops_cleanly_and_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("keel.cli.demo.replay_weeks", interrupted)
    result = demo("--store", str(tmp_path / "keel.db"))
    assert result.exit_code == 130
    assert "Interrupted. Every run so far is in the journal" in result.stdout and "keel runs" in result.stdout
