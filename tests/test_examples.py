"""Every example runs offline, exits 0 and prints what its docstring promises; importing one runs nothing."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import keel.models
from keel import Agent

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quickstart.py", ["status: completed", "high_f=75.2", "#10 run_finished"]),
        (
            "budget_and_bad_tools.py",
            ["status: partial", "step budget exhausted (max_steps=3)", "Unknown tool 'book_flight'", "max_tokens=800"],
        ),
        ("parallel_tools.py", ["status: completed", "the tool calls ran concurrently"]),
        pytest.param(
            "local_model.py",
            [
                "triage status: completed",
                "triage: category=",
                "tool: get_order({'order_id': 'A-1002'}) -> ok",
                "cost: $0.000000",
            ],
            marks=pytest.mark.skipif(
                importlib.util.find_spec("llama_cpp") is None, reason="the local extra is not installed"
            ),
        ),
    ],
)
def test_example_runs(name: str, expected: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in expected:
        assert line in done.stdout
    assert list(tmp_path.iterdir()) == []  # examples keep their journal in memory


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "budget_and_bad_tools.py",
        "local_model.py",
        "parallel_tools.py",
        "quickstart.py",
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_an_imported_example_runs_nothing_and_its_agents_run_again_and_again(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keel run examples/NAME.py:AGENT` imports the example: its own runs are only under ``__main__``."""
    task = "What's the high in Lisbon today?"
    if name == "local_model.py":
        pytest.importorskip("llama_cpp", reason="the local extra is not installed")
        monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", True)  # the embedded model, offline
        task = "Where is my order A-1002?"  # a 135M model answers what its agents are for, not the weather
    spec = importlib.util.spec_from_file_location(f"example_{name.removesuffix('.py')}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert capsys.readouterr().out == ""

    agents = [value for value in vars(module).values() if isinstance(value, Agent)]
    assert agents
    for agent in agents:
        first, again = (agent.run_sync(task) for _ in range(2))
        assert (again.status, again.output) == (first.status, first.output)
        assert again.status != "failed", again.report
