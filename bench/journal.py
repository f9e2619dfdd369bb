"""The journal's cost per event on SQLite, against bare inserts of the same rows in the same run.

Keel commits every event as it happens (a process that dies loses nothing it had recorded), through the store's
`create_run` / `append` / `finish_run`, with the JSON payload serialized on the way. The baselines insert the same
rows into a table of the same schema with the standard library's `sqlite3`: all in one `executemany` transaction
(the floor the issue names), and one commit per row (what per-event durability costs by itself). The last
contender is Keel's journal with a journal key: every payload sealed with AES-256-GCM on the way in.

    python bench/journal.py [--runs 2000]

The events are those of a real run (a support agent: a tool call, a checkpoint, guards, the answer), copied under
new run ids; every contender writes to its own fresh file in the same temporary directory (WAL,
synchronous=NORMAL, as Keel's store). Rounds alternate the contenders, and the median round is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _machine import cpu_model, version
from rich.console import Console
from rich.table import Table

from keel import Agent, Event, tool
from keel.store import MemoryStore, SQLiteStore, new_journal_key
from keel.store._sqlite_rows import INSERT_EVENT, event_row
from keel.store.base import RunRecord
from keel.testing import ScriptedModel, call, reply


@tool
def get_order(order_id: str) -> dict[str, str]:
    """Look up an order by id."""
    return {"id": order_id, "status": "shipped", "carrier": "UPS", "eta": "2024-07-22"}


def sample_run() -> list[Event]:
    """The journal of one ordinary run: started, a model call, a tool call, a checkpoint, the answer, finished."""
    model = ScriptedModel([call("get_order", order_id="A-1002"), reply("Order A-1002 shipped with UPS.")])
    result = Agent("support", model, tools=[get_order], store=MemoryStore()).run_sync("Where is my order A-1002?")
    return result.events


def copies(events: list[Event], runs: int) -> list[list[Event]]:
    return [[dataclasses.replace(e, run_id=f"run-{i:016x}") for e in events] for i in range(runs)]


def keel_store(path: Path, journals: list[list[Event]], *, key: str | None = None) -> float:
    store = SQLiteStore(path, encryption_key=key)

    async def write() -> None:
        for journal in journals:
            first, *middle, last = journal
            row = RunRecord(first.run_id, "support", "task", "test:scripted", started_at=first.ts)
            await store.create_run(row, first)
            for event in middle:
                await store.append(event)
            await store.finish_run(row, last)

    started = time.perf_counter()
    asyncio.run(write())
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def _bare(path: Path) -> sqlite3.Connection:
    SQLiteStore(path).close()  # the same schema, indexes and trigger as Keel's
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def bare_executemany(path: Path, journals: list[list[Event]]) -> float:
    conn = _bare(path)
    started = time.perf_counter()
    rows = [event_row(e) for journal in journals for e in journal]  # the same serialized rows
    conn.execute("BEGIN")
    conn.executemany(INSERT_EVENT, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def bare_commit_each(path: Path, journals: list[list[Event]]) -> float:
    conn = _bare(path)
    started = time.perf_counter()
    for journal in journals:
        for event in journal:
            conn.execute(INSERT_EVENT, event_row(event))  # autocommit: one transaction per row
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


CONTENDERS: dict[str, Callable[[Path, list[list[Event]]], float]] = {
    "bare executemany, one transaction (floor)": bare_executemany,
    "bare insert, one commit per row": bare_commit_each,
    "Keel journal (create_run / append / finish_run)": keel_store,
    "Keel journal, encrypted at rest (a journal key)": functools.partial(keel_store, key=new_journal_key()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000, help="runs per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per contender (default 5)")
    args = parser.parse_args()
    events = sample_run()
    per_round = args.runs * len(events)
    timings: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            journals = copies(events, args.runs)
            for index, (name, contender) in enumerate(CONTENDERS.items()):
                timings[name].append(contender(Path(tmp) / f"r{round_}-{index}.db", journals))
    floor = statistics.median(timings["bare executemany, one transaction (floor)"]) / per_round
    table = Table(title=f"Journal cost per event on SQLite: {args.runs:,} runs × {len(events)} events, median of "
                  f"{args.rounds} rounds")  # fmt: skip
    for column in ("writer", "µs / event", "× floor"):
        table.add_column(column, justify="left" if column == "writer" else "right")
    for name, values in timings.items():
        per_event = statistics.median(values) / per_round
        table.add_row(name, f"{per_event * 1e6:,.1f}", f"{per_event / floor:,.1f}×")
    console = Console(width=120)
    console.print(table)
    kinds = ", ".join(e.kind.value for e in events)
    console.print(f"Events of one run: {kinds}. Payload JSON serialized by every writer (the same rows).")
    console.print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, keel-agents {version('keel-agents')}; "
        f"{cpu_model()}; {platform.platform()}"
    )


if __name__ == "__main__":
    sys.exit(main())
