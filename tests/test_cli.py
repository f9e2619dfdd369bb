import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel import __version__
from keel import models as keel_models
from keel.cli.main import app
from keel.store import DEFAULT_STORE_PATH, MemoryStore

ROOT = Path(__file__).resolve().parents[1]
KEEL_SCRIPT = Path(sys.executable).with_name("keel")
RUN_ID = re.compile(r"run-[0-9a-f]{16}")

runner = CliRunner()


def keel(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "keel.db")


@pytest.fixture
def demo_run(db: str) -> str:
    result = keel("demo", "--scripted", "--store", db)
    assert result.exit_code == 0, result.output
    return RUN_ID.findall(result.stdout)[-1]


@pytest.fixture
def fresh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory where nothing ran yet, with no KEEL_STORE: the default store would be ./.keel/keel.db."""
    monkeypatch.delenv("KEEL_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """`keel run` imports from the current directory, as a user's shell would."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))


def test_version() -> None:
    result = keel("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"keel {__version__}"


def test_scripted_demo_completes_and_says_its_model_is_scripted(db: str) -> None:
    result = keel("demo", "--scripted", "--store", db)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "scripted (keel.testing.ScriptedModel)" in out and "canned" in out
    assert "completed — answered" in out
    run_id = RUN_ID.findall(out)[-1]
    assert f"keel trace {run_id} --store {db}" in out
    assert "keel runs" in out
    # progress: each step printed while the run went, before the answer
    assert out.index("get_order(order_id='A-1002') → ok") < out.index("find_customer(email=") < out.index("output")
    assert "2025-06-09" in out  # the answer quotes the looked-up order


def test_demo_runs_the_embedded_model_with_a_real_tool_call(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install -e '.[local]'")
    monkeypatch.setattr(keel_models, "ALLOW_MODEL_REQUESTS", True)

    result = keel("demo", "--store", db)

    assert result.exit_code in (0, 3), result.output  # a small real model may end partial; never a crash
    out = result.stdout
    assert "local:default" in out and "SmolLM2-135M-Instruct" in out and "running on this CPU" in out
    assert "get_order(order_id='A-1002') → ok" in out  # the model's own call, run for real
    run_id = RUN_ID.findall(out)[-1]
    assert f"keel trace {run_id} --store {db}" in out


def test_demo_without_the_local_extra_says_how_to_install_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a)
    )

    result = keel("demo", "--store", db)

    assert result.exit_code == 0, result.output
    assert "pip install 'keel-agents[local]'" in result.stdout
    assert "scripted (keel.testing.ScriptedModel)" in result.stdout


def test_demo_with_a_model_that_cannot_be_named_is_a_usage_error(db: str) -> None:
    result = keel("demo", "--model", "local:/nowhere/model.gguf", "--store", db)

    assert result.exit_code == 2
    assert "no such file" in result.output


def test_demo_refuses_a_script_and_a_model_together(db: str) -> None:
    result = keel("demo", "--scripted", "--model", "local:default", "--store", db)

    assert result.exit_code == 2
    assert "exclude each other" in result.output


def test_demo_uses_keel_store_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_STORE", str(tmp_path / "env.db"))
    result = keel("demo", "--scripted")
    assert result.exit_code == 0, result.output
    run_id = RUN_ID.findall(result.stdout)[-1]
    assert re.search(rf"keel trace {run_id} *$", result.stdout, re.MULTILINE)  # no --store needed
    assert run_id in keel("runs").stdout


def test_runs_lists_the_demo_run(db: str, demo_run: str) -> None:
    result = keel("runs", "--store", db)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if demo_run in line)
    assert "support-desk" in line and "completed" in line and "demo" in line and "answered" in line


def test_runs_filters(db: str, demo_run: str) -> None:
    assert demo_run in keel("runs", "--store", db, "--agent", "support-desk", "--session", "demo").stdout
    assert demo_run in keel("runs", "--store", db, "--status", "completed", "--limit", "1").stdout
    empty = keel(
        "runs", "--store", db, "--status", "rejected"
    )  # the demo has partial runs (its replays), none rejected
    assert empty.exit_code == 0 and "no runs" in empty.stdout
    assert keel("runs", "--store", db, "--status", "bogus").exit_code == 2


def test_runs_narrow_console_keeps_run_ids_whole(db: str, demo_run: str) -> None:
    result = runner.invoke(app, ["runs", "--store", db], env={"COLUMNS": "80"})
    assert demo_run in result.stdout
    assert "session and reason" in result.stdout


def test_trace_shows_the_journal(db: str, demo_run: str) -> None:
    result = keel("trace", demo_run, "--store", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for kind in ("run_started", "model_called", "tool_called", "run_finished"):
        assert kind in out
    assert "tool_called [execution] get_order(order_id='A-1002') → ok" in out
    assert "why: Check the order's status" in out  # the model's stated reason
    assert '"status":"delayed"' in out  # the tool's result
    assert "412 in / 24 out tok" in out


def test_trace_json(db: str, demo_run: str) -> None:
    result = keel("trace", demo_run, "--json", "--store", db)
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds == [
        "run_started",
        "model_called",
        "tool_called",
        "checkpoint",
        "model_called",
        "tool_called",
        "checkpoint",
        "model_called",
        "run_finished",
    ]
    assert [e["seq"] for e in events] == list(range(1, 10))
    assert list(events[0]) == [
        "run_id",
        "seq",
        "kind",
        "phase",
        "payload",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "latency_ms",
        "ts",
    ]
    assert events[2]["payload"]["tool"] == "get_order"
    assert events[-1]["payload"]["status"] == "completed"


def test_trace_unknown_run(db: str, demo_run: str) -> None:
    result = keel("trace", "nope", "--store", db)
    assert result.exit_code == 2
    assert "no run 'nope' in the store at" in result.stderr
    assert result.stdout == ""


def test_runs_in_a_fresh_directory_says_so_and_creates_nothing(fresh_dir: Path) -> None:
    result = keel("runs")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"no runs yet (no store at {DEFAULT_STORE_PATH})"
    missing = keel("runs", "--store", "sqlite:///elsewhere/keel.db")
    assert missing.exit_code == 0, missing.output
    assert "no runs yet (no store at elsewhere/keel.db)" in missing.stdout
    assert list(fresh_dir.iterdir()) == []


def test_trace_in_a_fresh_directory_is_a_usage_error_and_creates_nothing(fresh_dir: Path) -> None:
    result = keel("trace", "run-0123456789abcdef")
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        f"error: no store at {DEFAULT_STORE_PATH} yet: run an agent first, or point KEEL_STORE/--store at an "
        "existing store (help: docs/troubleshooting.md#storenotfounderror)"
    )
    assert result.stdout == ""
    assert list(fresh_dir.iterdir()) == []


def test_bad_store_url_is_a_usage_error() -> None:
    result = keel("runs", "--store", "mongodb://nowhere/keel")
    assert result.exit_code == 2
    assert "unsupported store URL scheme" in result.stderr
    assert "Traceback" not in result.output


def test_unopenable_store_is_a_failure(tmp_path: Path) -> None:
    result = keel("runs", "--store", str(tmp_path))  # a directory, not a database file
    assert result.exit_code == 1
    assert "cannot open the store" in result.stderr


@pytest.mark.usefixtures("repo_root")
def test_run_completed_exits_0(db: str) -> None:
    result = keel("run", "tests.cli_agents:adder", "add 2 and 3", "--store", db, "--session", "s1")
    assert result.exit_code == 0, result.output
    assert "2 + 3 = 5" in result.stdout
    assert "completed" in result.stdout
    assert "add(a=2, b=3) → ok" in result.stdout  # progress
    run_id = RUN_ID.findall(result.stdout)[-1]
    listed = keel("runs", "--store", db, "--session", "s1").stdout
    assert run_id in listed and "adder" in listed


@pytest.mark.usefixtures("repo_root")
def test_run_partial_exits_3(db: str) -> None:
    result = keel("run", "tests.cli_agents:looper", "never done", "--store", db)
    assert result.exit_code == 3, result.output
    assert "partial" in result.stdout
    assert "step budget exhausted (max_steps=2)" in result.stdout
    assert "not done" in result.stdout


@pytest.mark.usefixtures("repo_root")
def test_run_on_the_agents_own_store_leaves_the_agent_untouched() -> None:
    from tests import cli_agents

    result = keel("run", "tests.cli_agents:adder", "add")
    assert result.exit_code == 0, result.output
    assert "memory://" in result.stdout and "gone when this process ends" in result.stdout
    assert type(cli_agents.adder.store) is MemoryStore


@pytest.mark.usefixtures("repo_root")
def test_run_from_a_file_path(db: str) -> None:
    result = keel("run", "tests/cli_agents.py:adder", "add", "--store", db)
    assert result.exit_code == 0, result.output


@pytest.mark.usefixtures("repo_root")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nomodule:x", "cannot import 'nomodule': ModuleNotFoundError"),
        ("tests.cli_agents:not_an_agent", "tests.cli_agents:not_an_agent is a str, not a keel.Agent"),
        ("tests.cli_agents:missing", "has no attribute 'missing'"),
        ("tests.cli_agents", "name the agent as tests.cli_agents:AGENT"),
        (":adder", "expected MODULE:AGENT"),
    ],
)
def test_run_usage_errors_exit_2(target: str, message: str) -> None:
    result = keel("run", target, "a task")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


SELF_RUNNING_MODULE = textwrap.dedent(
    """
    import sys
    from keel import Agent
    from keel.testing import FunctionModel

    agent = Agent("selfish", FunctionModel(lambda request: "done"), store="memory://")
    print("the module ran its own agent:", agent.run_sync("on import").status)
    sys.exit(EXIT_STATUS)
    """
)


@pytest.mark.parametrize(("status", "shown"), [("0", "SystemExit: 0"), ("'bye'", "SystemExit: 'bye'")])
@pytest.mark.parametrize("form", ["file", "dotted"])
def test_run_a_module_that_exits_on_import_is_a_usage_error(
    form: str, status: str, shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"self_running_{form}_{len(status)}"
    (tmp_path / f"{name}.py").write_text(SELF_RUNNING_MODULE.replace("EXIT_STATUS", status))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = str(tmp_path / f"{name}.py") if form == "file" else name

    result = keel("run", f"{module}:agent", "a task")

    assert result.exit_code == 2, result.output
    assert "the module ran its own agent: completed" in result.stdout  # it did run, and said so ...
    assert "agent selfish" not in result.stdout  # ... but the CLI never started a run of its own
    message = " ".join(result.stderr.split())
    assert f"importing {module!r} exited ({shown})" in message
    assert 'if __name__ == "__main__":' in message
    assert name not in sys.modules


def test_the_readme_run_line_works_as_written() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    (line,) = [line for line in section.splitlines() if line.startswith("keel run ")]
    argv = shlex.split(line, comments=True)

    done = subprocess.run(
        [str(KEEL_SCRIPT), *argv[1:]],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "agent weather · model test:function · store memory://" in out
    assert out.index("get_forecast(city='Lisbon') → ok") < out.index("to_fahrenheit(celsius=24.0) → ok  75.2")
    assert '"high_f": 75.2' in out
    assert "completed — answered" in out
    assert "status: completed" not in out  # the example's own run (under __main__) did not happen


@pytest.mark.usefixtures("repo_root")
def test_run_empty_task_exits_2() -> None:
    result = keel("run", "tests.cli_agents:adder", "  ")
    assert result.exit_code == 2
    assert "the task is empty" in result.stderr


def test_console_script_and_python_m_keel(tmp_path: Path) -> None:
    env_store = tmp_path / "k.db"
    for command in ([str(KEEL_SCRIPT)], [sys.executable, "-m", "keel"]):
        version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
        assert version.returncode == 0 and version.stdout.strip() == f"keel {__version__}"
        missing = subprocess.run(
            [*command, "trace", "nope", "--store", str(env_store)], capture_output=True, text=True, timeout=60
        )
        assert missing.returncode == 2
        assert "no store at" in missing.stderr
        assert not env_store.exists()


def test_trace_tells_retries_fallbacks_loops_and_stops_in_words(db: str) -> None:
    from keel import Agent, RetryPolicy, tool
    from keel.testing import ScriptedModel, call, reply

    @tool(alternatives=["from_cache"])
    def get_order(order_id: str) -> str:
        """Look an order up (down)."""
        raise ConnectionError("orders API down")

    @tool
    def from_cache(order_id: str) -> str:
        """Yesterday's copy."""
        return "shipped"

    model = ScriptedModel([call("get_order", order_id="7")] * 4 + [reply("Shipped.")])
    fast = RetryPolicy(max_attempts=2, initial_delay_s=0, jitter=0)
    run = Agent("desk", model, tools=[get_order, from_cache], retry=fast, store=db).run_sync("where is 7?")

    out = keel("trace", run.run_id, "--store", db).stdout
    assert "get_order → from_cache: Tool 'get_order' failed" in out
    assert "step 2 done · state" in out and "revisited at step 2: the model was told" in out
    assert "revisited at step 3: loop broken" in out and "stopping: loop detected" in out
