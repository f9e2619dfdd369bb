"""What an operator can do from the dashboard: decide review items, and resume a run once they are decided.

Deciding goes through `ReviewQueue`, so the dashboard, ``keel review`` and any other process share one rule: the
first decision wins, atomically. Resuming runs ``keel resume RUN_ID`` in a child process, never in the web
server: the agent's code and tools run where ``keel resume`` would run them, a crash there cannot take the
dashboard down, and the run's journal (which the page shows live) is the only record needed. A resume that
fails to start (its agent cannot be imported, say) is reported on the run's page with the command's last lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keel.errors import ReviewError
from keel.guardrails.pii import redact_pii
from keel.guardrails.review import ReviewQueue
from keel.store.base import Decision, ReviewItem, Store

__all__ = ["MAX_RESUMES", "ResumeLauncher", "ResumeStatus", "UnknownReviewError", "decide"]

MAX_RESUMES = 8
"""Resumptions the dashboard runs at once at most."""
_TAIL_BYTES = 8192  # of a resumption's log read for its status


class UnknownReviewError(ReviewError):
    """No review item with this id: the dashboard answers 404, as for an unknown run (a lost decision is a 409)."""


async def decide(store: Store, review_id: str, decision: Decision, *, by: str, note: str = "") -> ReviewItem:
    """Approve or deny a pending item; `UnknownReviewError` when unknown, `ReviewError` when already decided."""
    queue = ReviewQueue(store)
    if "\x00" in review_id:  # no id holds one, and PostgreSQL would refuse the query as a store failure
        raise UnknownReviewError(f"no review item {review_id!r} in the store at {store.url}")
    try:
        await queue.get(review_id)  # an item is never deleted: once found, only a decision can make this one fail
    except ReviewError as exc:
        raise UnknownReviewError(str(exc)) from None
    if decision == "approved":
        return await queue.approve(review_id, by=by, note=note)
    if decision == "denied":
        return await queue.deny(review_id, by=by, note=note)
    raise ReviewError(f"a decision is 'approved' or 'denied', not {decision!r}")


@dataclass(frozen=True, slots=True)
class ResumeStatus:
    """Where a resumption started from the dashboard stands."""

    running: bool
    exit_code: int | None
    output: str
    """The last lines the command printed (its error, when it failed), redacted."""


class ResumeLauncher:
    """Starts ``keel resume`` for runs, one child process each, and remembers how each ended."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self._children: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, run_id: str) -> None:
        """Start resuming `run_id`; `ReviewError` when it is being resumed already or too many are running."""
        if (status := self.status(run_id)) is not None and status.running:
            raise ReviewError(f"run {run_id} is being resumed already")
        if sum(1 for child, _ in self._children.values() if child.poll() is None) >= MAX_RESUMES:
            raise ReviewError(f"{MAX_RESUMES} runs are being resumed already: try again when one has finished")
        self._forget_finished(keep=MAX_RESUMES * 4)
        if run_id in self._children:
            self._children.pop(run_id)[1].unlink(missing_ok=True)  # an earlier attempt's log
        handle, name = tempfile.mkstemp(prefix=f"keel-resume-{run_id}-", suffix=".log")
        log = Path(name)
        with os.fdopen(handle, "wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "keel", "resume", run_id, "--store", self.store_url],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
            )
        self._children[run_id] = (child, log)

    def status(self, run_id: str) -> ResumeStatus | None:
        """How the dashboard's resumption of `run_id` stands, or None if it never started one."""
        found = self._children.get(run_id)
        if found is None:
            return None
        child, log = found
        code = child.poll()
        try:
            with log.open("rb") as file:
                file.seek(max(0, log.stat().st_size - _TAIL_BYTES))
                tail = file.read().decode(errors="replace").splitlines()[-12:]
        except OSError:
            tail = []
        return ResumeStatus(running=code is None, exit_code=code, output=redact_pii("\n".join(tail)))

    def _forget_finished(self, *, keep: int) -> None:
        """Drop the oldest finished resumptions beyond `keep`, with their logs: memory stays bounded."""
        finished = [run_id for run_id, (child, _) in self._children.items() if child.poll() is not None]
        for run_id in finished[: max(0, len(self._children) - keep)]:
            self._children.pop(run_id)[1].unlink(missing_ok=True)

    def close(self) -> None:
        """Wait (bounded) for running resumptions, then forget them; their runs finish or can be resumed again."""
        for child, log in self._children.values():
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait(timeout=5)
            log.unlink(missing_ok=True)
        self._children.clear()
