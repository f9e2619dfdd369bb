"""``keel resume RUN_ID`` with ``keel run`` and ``keel review``: the approve and deny paths from the shell."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from escalation_agents import fetch_ticket, refund
from keel import Agent, ReviewQueue, RunStatus
from keel.cli.main import app
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call

runner = CliRunner()


def keel(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "keel.db")


@pytest.fixture
def refunds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "refunds.txt"
    monkeypatch.setenv("KEEL_TEST_REFUNDS", str(path))
    return path


def escalate(db: str) -> tuple[str, str]:
    """Run the desk from the shell until it pauses; its run id and review id."""
    ran = keel("run", "escalation_agents:desk", "Please look at ticket T-1.", "--store", db)
    assert ran.exit_code == 3, ran.output
    assert "escalated" in ran.stdout and "keel review list --run" in ran.stdout and "keel resume run-" in ran.stdout
    store = SQLiteStore(db)
    try:
        [run] = [r for r in store_runs(store) if r.status is RunStatus.ESCALATED]
        [item] = ReviewQueue(store).pending_sync(run_id=run.run_id)
    finally:
        store.close()
    return run.run_id, item.id


def store_runs(store: SQLiteStore):
    import asyncio

    return asyncio.run(store.list_runs(limit=100))


def test_approve_then_resume_runs_the_refund_once(db: str, refunds: Path) -> None:
    run_id, review_id = escalate(db)

    approved = keel("review", "approve", review_id, "--by", "alice", "--store", db)
    assert approved.exit_code == 0, approved.output
    resumed = keel("resume", run_id, "--store", db)

    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {run_id}" in resumed.stdout and "refunded 500.0 on A-1002" in resumed.stdout
    assert "completed" in resumed.stdout
    assert refunds.read_text().splitlines() == ["A-1002 500.0"]

    trace = keel("trace", run_id, "--store", db)
    assert trace.exit_code == 0, trace.output
    assert "taint: refund has severity high" in trace.stdout and f"(review {review_id})" in trace.stdout
    assert f"resumed from escalated after review {review_id}" in trace.stdout
    assert "approved by alice" in trace.stdout

    again = keel("resume", run_id, "--store", db)
    assert again.exit_code == 2 and "has finished (completed" in again.stderr
    assert refunds.read_text().splitlines() == ["A-1002 500.0"]


def test_deny_then_resume_tells_the_model_and_completes_without_the_refund(db: str, refunds: Path) -> None:
    run_id, review_id = escalate(db)

    denied = keel("review", "deny", review_id, "--by", "bob", "--note", "not this one", "--store", db)
    assert denied.exit_code == 0, denied.output
    assert f"resume with: keel resume {run_id} --store {db}" in denied.stdout
    resumed = keel("resume", run_id, "--store", db)

    assert resumed.exit_code == 0, resumed.output
    assert "The refund was not made" in resumed.stdout
    assert not refunds.exists()


def test_resuming_before_the_decision_is_a_usage_error_that_says_what_to_do(db: str, refunds: Path) -> None:
    run_id, review_id = escalate(db)

    early = keel("resume", run_id, "--store", db)

    assert early.exit_code == 2
    assert "still waiting for a person" in early.stderr and f"keel review approve {review_id}" in early.stderr
    assert not refunds.exists()


def test_an_unknown_run_and_a_missing_store_are_usage_errors(db: str, tmp_path: Path) -> None:
    escalate(db)
    unknown = keel("resume", "run-nope", "--store", db)
    assert unknown.exit_code == 2 and "no run 'run-nope'" in unknown.stderr

    missing = keel("resume", "run-nope", "--store", str(tmp_path / "nowhere.db"))
    assert missing.exit_code == 2 and "nowhere.db" in missing.stderr
    assert not (tmp_path / "nowhere.db").exists()


def test_an_agent_that_cannot_be_found_is_named_with_agent(db: str, refunds: Path) -> None:
    def build() -> Agent:  # built inside a function: not a top-level name of any module
        model = ScriptedModel([call("fetch_ticket", ticket_id="T"), call("refund", order_id="Z", amount=1)])
        return Agent("hidden", model, tools=[fetch_ticket, refund], store=db)

    result = build().run_sync("Ticket T.")
    assert result.status is RunStatus.ESCALATED
    store = SQLiteStore(db)
    try:
        [item] = ReviewQueue(store).pending_sync(run_id=result.run_id)
        ReviewQueue(store).approve_sync(item.id, by="x")
    finally:
        store.close()

    lost = keel("resume", result.run_id, "--store", db)
    assert lost.exit_code == 2 and "--agent MODULE:AGENT" in lost.stderr and "'hidden'" in lost.stderr

    wrong = keel("resume", result.run_id, "--store", db, "--agent", "escalation_agents:desk")
    assert wrong.exit_code == 2 and "belongs to agent 'hidden'" in wrong.stderr


def test_a_script_is_never_run_again_to_find_its_agent(db: str, tmp_path: Path, refunds: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "executions.txt"
    script = tmp_path / "desk_script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"open({str(marker)!r}, 'a').write('ran\\n')\n"
        "from escalation_agents import desk_model, fetch_ticket, refund\n"
        "from keel import Agent\n"
        "from keel.testing import FunctionModel\n"
        f"desk = Agent('desk', FunctionModel(desk_model), tools=[fetch_ticket, refund], store={db!r})\n"
        "print(desk.run_sync('Please look at ticket T-1.').run_id)\n"  # no __main__ guard: importing it runs it
    )
    run_id = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout.strip()
    store = SQLiteStore(db)
    try:
        [item] = ReviewQueue(store).pending_sync(run_id=run_id)
        ReviewQueue(store).approve_sync(item.id, by="x")
    finally:
        store.close()

    refused = keel("resume", run_id, "--store", db)

    assert refused.exit_code == 2 and "defined in a script" in refused.stderr and "--agent" in refused.stderr
    assert marker.read_text() == "ran\n" and not refunds.exists()
    resumed = keel("resume", run_id, "--store", db, "--agent", "escalation_agents:desk")
    assert resumed.exit_code == 0, resumed.output
    assert refunds.read_text().splitlines() == ["A-1002 500.0"] and marker.read_text() == "ran\n"
