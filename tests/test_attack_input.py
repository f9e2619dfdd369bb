"""Bad stores met by the CLI, found by bench/attack.py: each one a clear error or a plain answer, nothing lost."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel import Agent
from keel.cli.main import app
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, reply


def _freeze(path: Path) -> None:
    """Make `path` and its directory unwritable, for root too where ``chattr`` can; skip where nothing can."""
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path), str(path.parent)]).returncode == 0:
        return
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        (path.parent / "probe").touch()
    except OSError:
        return
    (path.parent / "probe").unlink()
    pytest.skip("this user can write anywhere (root without chattr): no read-only disk to test with")


def _thaw(path: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path), str(path.parent)], check=False)
    path.parent.chmod(0o755)
    path.chmod(0o644)


def test_reading_commands_read_a_store_on_a_read_only_disk(tmp_path: Path) -> None:
    """`keel runs` on a store nobody may write (a backup on a read-only mount) failed with "unable to open
    database file": SQLite cannot create the ``-shm`` file a WAL store needs, although nothing needs writing."""
    path = tmp_path / "ro" / "keel.db"
    store = SQLiteStore(path)
    run = Agent("desk", ScriptedModel([reply("shipped")]), store=store, guards=[]).run_sync("where is my parcel?")
    store.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    _freeze(path)
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["runs", "--store", str(path)], env={"COLUMNS": "200"})
        traced = runner.invoke(app, ["trace", run.run_id, "--store", str(path)], env={"COLUMNS": "200"})
        decided = runner.invoke(app, ["review", "approve", "rev-1", "--by", "a", "--store", str(path)])
    finally:
        _thaw(path)

    assert listed.exit_code == 0 and run.run_id in listed.output, listed.output
    assert traced.exit_code == 0 and "shipped" in traced.output, traced.output
    assert (
        decided.exit_code == 1
        and "cannot open the store" in decided.output
        and decided.exception.__class__ is SystemExit
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["keel.db"], "nothing was written beside it"
