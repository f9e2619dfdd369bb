"""Every example runs offline, exits 0 and prints what its docstring promises."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quickstart.py", ["status: completed", "high_f=75.2", "#8 run_finished"]),
        (
            "budget_and_bad_tools.py",
            ["status: partial", "step budget exhausted (max_steps=3)", "Unknown tool 'book_flight'", "max_tokens=1000"],
        ),
        ("parallel_tools.py", ["status: completed", "the tool calls ran concurrently"]),
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
        "parallel_tools.py",
        "quickstart.py",
    ]
