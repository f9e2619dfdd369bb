"""The dashboard API's server time with 1,000,000 events stored: overview, runs list, a run page (target < 200 ms).

A store is filled with synthetic but realistic journals: 50,000 runs of 20 events on average over 30 days, four
agents, two models, tool calls with retries, failures, escalations and loops, written as Keel's SQLite store writes
them (the same rows, rollups included) but in bulk transactions so that filling takes seconds, not minutes. Each
endpoint is then asked for in-process through Starlette's test client (server time: routing, queries, rendering
JSON; no network), rounds alternating, and the median and p95 are reported. The baseline is the overview's
figures computed the naive way, scanning the events table, in the same run: what the rollups save.

    python bench/dashboard.py [--events 1000000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _machine import cpu_model, version
from rich.console import Console
from rich.table import Table
from starlette.testclient import TestClient

from keel.journal import Event, EventKind, Phase
from keel.server import create_app
from keel.store import SQLiteStore
from keel.store._sqlite_rollups import UPSERT, rows_of
from keel.store._sqlite_rows import INSERT_EVENT, RUN_COLUMNS, event_row

AGENTS = ("support", "billing", "research", "triage")
MODELS = (("openai:gpt-4o-mini", 0.15, 0.60), ("openai:gpt-4o", 2.50, 10.00))
TOOLS = ("lookup_order", "customer_profile", "search_kb", "refund")


def journal(run_id: str, agent: str, start: float, rng: random.Random) -> tuple[tuple[object, ...], list[Event]]:
    """One run: started, steps of (reserve, model call, tool calls, checkpoint), finished; with its runs row."""
    model, price_in, price_out = MODELS[0] if agent != "research" else MODELS[1]
    events: list[Event] = []
    ts = start

    def add(kind: EventKind, payload: dict[str, object], phase: Phase = Phase.EXECUTION, **figures: float) -> None:
        nonlocal ts
        ts += rng.uniform(0.05, 1.5)
        events.append(Event(run_id, len(events) + 1, kind, phase, payload, ts=ts, **figures))  # type: ignore[arg-type]

    add(EventKind.RUN_STARTED, {"agent": agent, "task": f"request {run_id}", "model": model, "tools": list(TOOLS)})
    steps, tokens, cost = rng.randint(2, 5), 0, 0.0
    outcome = rng.choices(("completed", "partial", "failed", "escalated"), (90, 4, 3, 3))[0]
    for step in range(1, steps + 1):
        add(EventKind.BUDGET_RESERVED, {"tokens": 3000, "cost_usd": 0.002})
        t_in, t_out = rng.randint(400, 2400), rng.randint(20, 200)
        c = (t_in * price_in + t_out * price_out) / 1e6
        tokens, cost = tokens + t_in + t_out, cost + c
        tool = rng.choice(TOOLS[:3])
        call = {"id": f"c{step}", "name": tool, "arguments": {"order_id": f"A-{rng.randint(1, 9999)}"}}
        add(EventKind.MODEL_CALLED, {"model": model, "step": step, "tool_calls": [call], "reason": "needs data",
            "alternatives": list(TOOLS), "informed_by": [len(events)]}, tokens_in=t_in, tokens_out=t_out,
            cost_usd=c, latency_ms=rng.uniform(300, 2500))  # fmt: skip
        if rng.random() < 0.05:
            add(EventKind.TOOL_CALLED, {"tool": tool, "outcome": "error", "attempt": 1, "error": "reset"},
                latency_ms=rng.uniform(5, 900))  # fmt: skip
            add(EventKind.RETRY_SCHEDULED, {"tool": tool, "attempt": 2, "delay_s": 0.5})
        add(EventKind.TOOL_CALLED, {"tool": tool, "outcome": "ok", "attempt": 1, "result": {"status": "shipped"}},
            latency_ms=rng.uniform(5, 900))  # fmt: skip
        add(EventKind.CHECKPOINT, {"step": step, "state_hash": f"{rng.getrandbits(64):016x}"})
    if outcome == "escalated":
        add(EventKind.ESCALATED, {"reason": "refund needs approval", "trigger": "severity"})
    if outcome == "partial":
        add(EventKind.LOOP_DETECTED, {"kind": "repeat", "action": "break", "step": steps})
    add(EventKind.RUN_FINISHED, {"status": outcome, "reason": outcome}, latency_ms=(ts - start) * 1000)
    half = tokens // 2
    report = json.dumps({"reason": outcome})
    row = (run_id, agent, None, f"request {run_id}", model, outcome, start, ts, steps, half, tokens - half, cost, None,
           report, outcome)  # fmt: skip
    return row, events


def fill(path: Path, events_wanted: int, seed: int = 7) -> int:
    """Write runs until `events_wanted` events are stored; returns the number of events."""
    SQLiteStore(path).close()  # the schema, as Keel creates it
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    now, written, index = time.time(), 0, 0
    while written < events_wanted:
        conn.execute("BEGIN")
        for _ in range(1000):
            start = now - rng.uniform(0, 30 * 86400)
            row, events = journal(f"run-{index:016x}", rng.choice(AGENTS), start, rng)
            conn.execute(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 15)})", row)
            conn.executemany(INSERT_EVENT, [event_row(e) for e in events])
            conn.executemany(UPSERT, [r for e in events for r in rows_of(e)])
            written, index = written + len(events), index + 1
        conn.execute("COMMIT")
    conn.close()
    return written


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def naive_overview(path: Path) -> Callable[[], object]:
    """The overview's figures from the events table itself, as a dashboard without rollups would compute them."""
    conn = sqlite3.connect(path)
    since = time.time() - 86400

    def compute() -> object:
        return conn.execute(
            "SELECT kind, COUNT(*), SUM(tokens_in + tokens_out), SUM(cost_usd), "
            "SUM(CASE WHEN json_extract(payload, '$.status') = 'failed' THEN 1 ELSE 0 END) "
            "FROM events WHERE ts >= ? GROUP BY kind",
            (since,),
        ).fetchall()

    return compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keel.db"
        started = time.perf_counter()
        stored = fill(path, args.events)
        console.print(
            f"filled {stored:,} events in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
        store = SQLiteStore(path)
        client = TestClient(create_app(store), base_url="http://127.0.0.1")
        middle = client.get("/api/runs", params={"limit": 1}).json()["total"] // 2
        run_id = client.get("/api/runs", params={"limit": 1, "offset": middle}).json()["runs"][0]["run_id"]
        contenders: dict[str, Callable[[], object]] = {
            "GET /api/overview (24h)": lambda: client.get("/api/overview"),
            "GET /api/overview (30d)": lambda: client.get("/api/overview", params={"window": "30d"}),
            "GET /api/runs (page 1)": lambda: client.get("/api/runs"),
            "GET /api/runs (failed, page 5)": lambda: client.get(
                "/api/runs", params={"status": "failed", "offset": 200}
            ),
            "GET /api/runs/{id}": lambda: client.get(f"/api/runs/{run_id}"),
            "GET /api/agents (7d)": lambda: client.get("/api/agents", params={"window": "7d"}),
            "GET /metrics": lambda: client.get("/metrics"),
            "baseline: overview by scanning events": naive_overview(path),
        }
        for call in contenders.values():  # warm caches once, as a running dashboard would be
            call()
        results: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):  # alternate, so a noisy moment hits every contender alike
            for name, call in contenders.items():
                results[name] += timed(call, 1)
        store.close()
    table = Table(
        title=f"Dashboard API server time, {stored:,} events ({cpu_model()}, starlette {version('starlette')})"
    )
    for column in ("request", "median ms", "p95 ms", "target"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for name, times in results.items():
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        target = "" if name.startswith("baseline") else ("ok < 200" if p95 < 200 else "OVER 200")
        table.add_row(name, f"{statistics.median(times):.1f}", f"{p95:.1f}", target)
    console.print(table)


if __name__ == "__main__":
    main()
