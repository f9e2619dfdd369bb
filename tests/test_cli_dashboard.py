"""``keel dashboard``: refuses what would be unsafe or pointless, before it serves anything."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.main import app
from keel.store import SQLiteStore

runner = CliRunner()


def test_binding_beyond_loopback_without_a_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_DASHBOARD_TOKEN", raising=False)
    SQLiteStore(tmp_path / "keel.db").close()
    result = runner.invoke(app, ["dashboard", "--host", "0.0.0.0", "--store", str(tmp_path / "keel.db")])
    assert result.exit_code == 2 and "KEEL_DASHBOARD_TOKEN" in result.output


def test_a_store_that_does_not_exist_is_named_not_created(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dashboard", "--store", str(tmp_path / "nope.db")])
    assert result.exit_code == 2 and "no store at" in result.output
    assert not (tmp_path / "nope.db").exists()
