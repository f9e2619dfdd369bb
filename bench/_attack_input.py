"""Attack (e): bad stores and huge text through the CLI and the dashboard — clear errors, no traceback, nothing lost.

Every reading and writing command (``runs``, ``trace``, ``tools``, ``usage``, ``cost``, ``review list|approve``,
``resume``) and ``keel dashboard`` meet: a file of garbage, a SQLite file cut short, a store written by a newer
Keel, a read-only (immutable) store, a path or directory that does not exist, a directory where the file should
be, an unsupported URL scheme and a PostgreSQL URL nobody listens at (127.0.0.1:1). Each must end with exit code
1 or 2 (or 0, where the store is merely read-only and the command only reads), a message naming the store and no
traceback, and leave the file byte for byte as it was (no store created where there was none). The dashboard then
serves a store that breaks under it (503 pages, never 500), and a run whose task and tool result are a megabyte
each (pages and CLI output stay bounded).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from _attack_table import Report
from starlette.testclient import TestClient
from typer.testing import CliRunner

from keel import Agent, Escalation, tool
from keel.cli.main import app as cli
from keel.guardrails.review import ReviewQueue
from keel.server import create_app
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, reply

AREA_STORE = "e. bad stores (CLI)"
AREA_PAGES = "e. bad input (dashboard)"
HUGE = 1_000_000
READ_ONLY_FIX = "tests/test_attack_input.py::test_reading_commands_read_a_store_on_a_read_only_disk"


@tool(severity="critical", side_effects=True, trusted=True)
def wire(amount: float) -> str:
    """Wire money (waits for a person)."""
    return "wired"


@tool(trusted=True)
def dump(size: int) -> str:
    """Return `size` characters."""
    return "x" * size


async def _good_store(path: Path) -> tuple[str, str]:
    """A store with one paused run: its run id and review id."""
    store = SQLiteStore(path)
    agent = Agent(
        "payer",
        ScriptedModel([call("wire", amount=5.0), reply("done")]),
        tools=[wire],
        store=store,
        escalation=Escalation(severity="critical"),
        guards=[],
    )
    result = await agent.run("wire 5")
    [item] = await ReviewQueue(store).pending()
    store.close()
    return result.run_id, item.id


def _stores(tmp: Path, good: Path) -> dict[str, tuple[str, Path | None, Callable[[], None]]]:
    """Name → (the ``--store`` argument, the file that must not change or appear, how to undo the damage)."""
    garbage = tmp / "garbage.db"
    garbage.write_bytes(b"this is not a database\x00\xff" * 400)
    cut = tmp / "cut.db"
    cut.write_bytes(good.read_bytes()[:4096])
    newer = tmp / "newer.db"
    shutil.copy(good, newer)
    with closing(sqlite3.connect(newer)) as conn:
        conn.execute("PRAGMA user_version = 999")
    frozen = tmp / "frozen" / "keel.db"
    frozen.parent.mkdir()
    shutil.copy(good, frozen)
    undo = _freeze(frozen)
    folder = tmp / "a-folder.db"
    folder.mkdir()
    return {
        "a file of garbage": (str(garbage), garbage, _nothing),
        "a SQLite file cut short": (str(cut), cut, _nothing),
        "a store of a newer Keel": (str(newer), newer, _nothing),
        "a read-only (immutable) store": (str(frozen), frozen, undo),
        "a path that does not exist": (str(tmp / "nope.db"), tmp / "nope.db", _nothing),
        "a directory that does not exist": (f"sqlite:///{tmp / 'no' / 'dir' / 'k.db'}", tmp / "no", _nothing),
        "a directory in place of the file": (str(folder), None, _nothing),
        "an unsupported scheme": ("redis://127.0.0.1:6379/0", None, _nothing),
        "PostgreSQL nobody listens at": ("postgresql://keel@127.0.0.1:1/keel?connect_timeout=2", None, _nothing),
    }


def _nothing() -> None:
    return None


def _freeze(path: Path) -> Callable[[], None]:
    """Make `path` and its directory unwritable even for root (``chattr +i``), else by permissions."""
    targets = [path, path.parent]
    if (
        shutil.which("chattr")
        and subprocess.run(["chattr", "+i", *map(str, targets)], capture_output=True).returncode == 0
    ):
        return lambda: subprocess.run(["chattr", "-i", *map(str, targets)], check=False)
    path.chmod(0o444)
    path.parent.chmod(0o555)
    return lambda: (path.parent.chmod(0o755), path.chmod(0o644)) and None


def _fingerprint(path: Path | None) -> str:
    if path is None or not path.exists():
        return "absent"
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commands(run_id: str, review_id: str) -> dict[str, tuple[list[str], bool]]:
    """Name → (argv, whether the command only reads)."""
    return {
        "runs": (["runs"], True),
        "trace": (["trace", run_id], True),
        "tools": (["tools"], True),
        "usage": (["usage"], True),
        "cost": (["cost"], True),
        "review list": (["review", "list"], True),
        "review approve": (["review", "approve", review_id, "--by", "alice"], False),
        "resume": (["resume", run_id], False),
    }


def _dashboard(store: str) -> tuple[int | None, str]:
    """``keel dashboard`` on a bad store: it must exit with a message (None: still serving after 20 s)."""
    command = [sys.executable, "-m", "keel", "dashboard", "--store", store, "--port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=20)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        return None, proc.communicate()[0].decode(errors="replace")


def check_stores(report: Report, tmp: Path, good: Path, run_id: str, review_id: str) -> None:
    runner = CliRunner()
    for store_name, (store, watched, undo) in _stores(tmp, good).items():
        try:
            for command, (argv, reads) in _commands(run_id, review_id).items():
                before = _fingerprint(watched)
                result = runner.invoke(cli, [*argv, "--store", store], env={"COLUMNS": "200", "NO_COLOR": "1"})
                after = _fingerprint(watched)
                traceback = result.exception is not None and not isinstance(result.exception, SystemExit)
                # A reading command may also say there is nothing to read yet ("no runs yet (no store at …)").
                allowed = (0, 1, 2) if reads and "not exist" in store_name else (1, 2)
                if reads and "read-only" in store_name:
                    allowed = (0,)  # a store nobody may write is still there to read
                named = store.split("?")[0].split("///")[-1] in result.output or store_name == "an unsupported scheme"
                report.add(
                    AREA_STORE,
                    f"{store_name} · keel {command}: clear error, nothing changed",
                    result.exit_code in allowed
                    and not traceback
                    and before == after
                    and (named or result.exit_code == 0),
                    f"exit {result.exit_code}, traceback: {traceback}, changed: {before != after}, names the store: "
                    f"{named}; {' '.join(result.output.split())[:240]}",
                    fixed=READ_ONLY_FIX if reads and "read-only" in store_name else "",
                )
            if "read-only" not in store_name:
                code, out = _dashboard(store)
                report.add(
                    AREA_STORE,
                    f"{store_name} · keel dashboard: refuses to start with a message",
                    code in (1, 2) and "Traceback" not in out,
                    f"exit {code}; {' '.join(out.split())[:240]}",
                )
        finally:
            undo()


async def _huge_run(store: SQLiteStore) -> str:
    agent = Agent(
        "huge", ScriptedModel([call("dump", size=HUGE), reply("y" * HUGE)]), tools=[dump], store=store, guards=[]
    )
    return (await agent.run("z" * HUGE)).run_id


def check_pages(report: Report, tmp: Path) -> None:
    store = SQLiteStore(tmp / "huge.db")
    run_id = asyncio.run(_huge_run(store))
    with TestClient(create_app(store, resume=False), base_url="http://127.0.0.1") as client:
        for page in ("/runs", f"/runs/{run_id}", "/api/runs", f"/api/runs/{run_id}", "/reviews", "/"):
            start = time.perf_counter()
            answer = client.get(page)
            took = time.perf_counter() - start
            report.add(
                AREA_PAGES,
                f"a 1 MB task and tool result · {page}: shown, cut to under 200 kB",
                answer.status_code == 200 and len(answer.content) < 200_000,
                f"HTTP {answer.status_code}, {len(answer.content):,} bytes, {took * 1000:.0f} ms",
            )
    runner = CliRunner()
    for argv in (["runs"], ["trace", run_id], ["trace", run_id, "--json"], ["tools"]):
        result = runner.invoke(cli, [*argv, "--store", str(tmp / "huge.db")], env={"COLUMNS": "200"})
        report.add(
            AREA_PAGES,
            f"a 1 MB task and tool result · keel {' '.join(argv[:1] + argv[2:])}: output under 200 kB",
            result.exit_code == 0 and len(result.output) < 200_000,
            f"exit {result.exit_code}, {len(result.output):,} characters",
        )
    # The store breaks under a running dashboard: its file replaced by garbage (the 503s are logged as warnings).
    logging.getLogger("keel.server").setLevel(logging.ERROR)
    with TestClient(create_app(store, resume=False), base_url="http://127.0.0.1") as client:
        for name in ("huge.db", "huge.db-wal", "huge.db-shm"):
            if (tmp / name).exists():
                (tmp / name).write_bytes(b"garbage" * 1000)  # in place: the open connection reads it
        for page in ("/", "/runs", f"/runs/{run_id}", "/api/runs", "/metrics", "/reviews"):
            code = client.get(page).status_code
            report.add(
                AREA_PAGES, f"the store breaks under the dashboard · {page}: 503, not 500", code == 503, f"HTTP {code}"
            )
    store.close()


NUL_FIX = "tests/test_server.py::test_a_nul_character_in_a_filter_or_an_id_is_bad_input_not_a_store_failure"


def check_nul(report: Report, tmp: Path, postgres_url: str | None) -> None:
    """A NUL character in a filter or an id: a 400 or 404 on every backend (PostgreSQL refuses NUL in text)."""
    stores: list[tuple[str, Any]] = [("sqlite", SQLiteStore(tmp / "nul.db"))]
    if postgres_url:
        from keel.store.postgres import PostgresStore

        stores.append(("postgresql", PostgresStore(postgres_url, schema=f"keel_attack_nul_{os.getpid()}")))
    for backend, store in stores:
        app = create_app(store, resume=False)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            headers = {"X-CSRF-Token": app.state.keel.guard.csrf}
            for path, expected in (
                ("/api/runs?agent=a%00b", 400),
                ("/runs?session=%00", 400),
                ("/api/runs/run-%00", 404),
                ("/runs/run-%00", 404),
                ("POST /api/reviews/rev-%00/deny", 404),
            ):
                if path.startswith("POST "):
                    code = client.post(path[5:], json={}, headers=headers).status_code
                else:
                    code = client.get(path).status_code
                report.add(
                    AREA_PAGES,
                    f"a NUL character · {path} ({backend}): {expected}, not a store failure",
                    code == expected,
                    f"HTTP {code}",
                    fixed=NUL_FIX,
                )
        if backend == "postgresql":
            import psycopg

            with psycopg.connect(postgres_url or "", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
        store.close()


async def attack(report: Report, tmp: Path, postgres_url: str | None) -> None:
    """Part (e)."""
    good = tmp / "good.db"
    run_id, review_id = await _good_store(good)
    await asyncio.to_thread(check_stores, report, tmp, good, run_id, review_id)
    await asyncio.to_thread(check_pages, report, tmp)
    await asyncio.to_thread(check_nul, report, tmp, postgres_url)
