"""The runs list's WHERE clause, shared by the SQL stores (only the parameter mark differs by driver)."""

from __future__ import annotations

from typing import Any

from keel.result import RunStatus

__all__ = ["run_filter"]


def run_filter(
    agent: str | None, session_id: str | None, status: RunStatus | None, since: float | None, *, mark: str
) -> tuple[str, list[Any]]:
    """``WHERE …`` (or nothing) and its parameters; `mark` is the driver's placeholder (``?`` or ``%s``)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("agent", agent), ("session_id", session_id), ("status", status)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(str(value))
    if since is not None:
        clauses.append(f"started_at >= {mark}")
        params.append(float(since))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
