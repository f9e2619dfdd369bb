"""The README's quick start is code users paste: it must keep running."""

import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_quick_start_runs_as_written(monkeypatch, capsys):
    monkeypatch.setenv("KEEL_STORE", "memory://")
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 20  # issue 9: a quick start of at most 20 lines
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("completed Order 1234 has shipped.")
    assert "reason: answered" in out


def test_the_person_in_the_loop_example_runs_as_written(monkeypatch, capsys):
    monkeypatch.setenv("KEEL_STORE", "memory://")
    code = re.search(r"## A person in the loop\n.*?```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.startswith("completed Refunded 20.0 on order 1234.")


def test_the_when_things_go_wrong_example_runs_as_written(monkeypatch, capsys):
    monkeypatch.setenv("KEEL_STORE", "memory://")
    code = re.search(r"## When things go wrong\n.*?```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "completed 3 Order 7 shipped (as of yesterday)."
    assert out[1] == "['retry_scheduled', 'retry_scheduled', 'fallback_used']"


def test_the_paying_less_example_runs_as_written(monkeypatch, capsys):
    monkeypatch.setenv("KEEL_STORE", "memory://")
    code = re.search(r"## Paying less\n.*?```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Order 7 has shipped. ['openai:gpt-4o-mini', 'openai:gpt-4o', 'openai:gpt-4o-mini']"


def test_the_observability_example_runs_as_written(monkeypatch, capsys):
    monkeypatch.setenv("KEEL_STORE", "memory://")
    code = re.search(r"The same journal, from code:\n\n```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out == ["1 240 ['execution']", "[('get_order', 'ok')]"]
