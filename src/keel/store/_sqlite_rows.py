"""How the SQLite store's rows map to Keel's records: runs, events, and the schema's statements."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic_core import to_json

from keel.journal import Event, EventKind, Phase
from keel.result import RunStatus
from keel.store.base import RunRecord

__all__ = [
    "EVENT_COLUMNS",
    "INSERT_EVENT",
    "RUN_COLUMNS",
    "dumps",
    "event_of",
    "event_row",
    "run_record",
    "run_row",
    "split",
]

RUN_COLUMNS = (
    "run_id, agent, session_id, task, model, status, started_at, finished_at, steps, "
    "input_tokens, output_tokens, cost_usd, output, report, reason"
)
EVENT_COLUMNS = "run_id, seq, kind, phase, payload, tokens_in, tokens_out, cost_usd, latency_ms, ts"


def dumps(value: Any) -> str:
    """JSON text of `value`; pydantic-core's serializer is several times faster than json.dumps."""
    return to_json(value, fallback=str).decode()


def event_of(r: tuple[Any, ...]) -> Event:
    """An `Event` from a row of `EVENT_COLUMNS`."""
    return Event(r[0], r[1], EventKind(r[2]), Phase(r[3]), json.loads(r[4]), r[5], r[6], r[7], r[8], r[9])


INSERT_EVENT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def event_row(event: Event) -> tuple[Any, ...]:
    """The `INSERT_EVENT` parameters for `event`."""
    return (
        event.run_id,
        event.seq,
        event.kind.value,
        event.phase.value,
        dumps(event.payload),
        event.tokens_in,
        event.tokens_out,
        event.cost_usd,
        event.latency_ms,
        event.ts,
    )


def split(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current = ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def run_row(run: RunRecord) -> tuple[Any, ...]:
    """A runs row (`RUN_COLUMNS`) for `run`."""
    return (
        run.run_id,
        run.agent,
        run.session_id,
        run.task,
        run.model,
        run.status.value,
        run.started_at,
        run.finished_at,
        run.steps,
        run.input_tokens,
        run.output_tokens,
        run.cost_usd,
        None if run.output is None else dumps(run.output),
        None if run.report is None else dumps(run.report),
        run.reason,
    )


def run_record(row: tuple[Any, ...]) -> RunRecord:
    """A `RunRecord` from a row of `RUN_COLUMNS`."""
    return RunRecord(
        run_id=row[0],
        agent=row[1],
        session_id=row[2],
        task=row[3],
        model=row[4],
        status=RunStatus(row[5]),
        started_at=row[6],
        finished_at=row[7],
        steps=row[8],
        input_tokens=row[9],
        output_tokens=row[10],
        cost_usd=row[11],
        output=None if row[12] is None else json.loads(row[12]),
        report=None if row[13] is None else json.loads(row[13]),
        reason=row[14],
    )
