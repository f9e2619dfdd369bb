"""A file Keel cannot use as its store (random bytes, a truncated or damaged store) is a clear `StoreError`.

From the Python API and from every CLI command that reads a store, the error names the file and says it is not a
Keel store or is corrupt, and the file is left byte for byte as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel import Agent
from keel.cli.main import app
from keel.errors import StoreError
from keel.store import SQLiteStore, open_store
from keel.testing import ScriptedModel, reply

NOT_A_STORE = "is not a Keel store: it is not an SQLite database (file is not a database)"
CORRUPT = "is corrupt: SQLite cannot read it (database disk image is malformed)"


def a_store(path: Path) -> bytes:
    store = SQLiteStore(path)
    try:
        for n in range(3):
            Agent("desk", ScriptedModel([reply("ok")]), store=store).run_sync(f"task {n}")
    finally:
        store.close()
    return path.read_bytes()


def random_bytes(path: Path) -> str:
    path.write_bytes(os.urandom(8192))
    return NOT_A_STORE


def truncated(path: Path) -> str:
    path.write_bytes(a_store(path)[:4096])  # the header and first page only: the schema's pages are gone
    return CORRUPT


def truncated_to_its_header(path: Path) -> str:
    path.write_bytes(a_store(path)[:100])
    return CORRUPT


SPOILERS: list[Callable[[Path], str]] = [random_bytes, truncated, truncated_to_its_header]


@pytest.fixture(params=SPOILERS, ids=lambda spoil: spoil.__name__)
def spoiled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, bytes]:
    path = tmp_path / "keel.db"
    expected = request.param(path)
    return path, expected, path.read_bytes()


@pytest.mark.parametrize("create", [True, False], ids=["create", "read-only"])
def test_opening_it_from_python_names_the_file_and_changes_nothing(spoiled, create: bool) -> None:
    path, expected, before = spoiled
    with pytest.raises(StoreError) as raised:
        open_store(path, create=create)
    assert str(path) in str(raised.value) and expected in str(raised.value)
    assert "Nothing was written to it" in str(raised.value)
    assert path.read_bytes() == before


def test_an_agent_given_it_stops_before_its_run_starts_and_changes_nothing(spoiled) -> None:
    path, expected, before = spoiled
    model = ScriptedModel([reply("ok")])
    with pytest.raises(StoreError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        Agent("desk", model, store=str(path)).run_sync("go")
    assert model.requests == [], "no model call is made for a run that cannot be journaled"
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "command",
    [["runs"], ["trace", "run-0123456789abcdef"], ["usage"], ["cost"], ["tools"], ["review", "list"]],
    ids=lambda command: command[0],
)
def test_every_reading_command_exits_1_with_the_error_and_changes_nothing(spoiled, command: list[str]) -> None:
    path, expected, before = spoiled
    result = CliRunner().invoke(app, [*command, "--store", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert message.startswith("error: ") and message.endswith("(help: docs/troubleshooting.md#storeerror)")
    assert str(path) in message and expected in message
    assert "Traceback" not in result.output
    assert path.read_bytes() == before


def test_a_bad_sync_setting_is_refused_before_any_file_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SQLITE_SYNC", "sometimes")
    path = tmp_path / "new" / "keel.db"
    with pytest.raises(StoreError, match="KEEL_SQLITE_SYNC must be NORMAL or FULL, got 'SOMETIMES'"):
        SQLiteStore(path)
    assert not path.parent.exists()
