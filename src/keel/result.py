"""What a run returns: its status, output, status report, usage and journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from keel.journal import Event
from keel.usage import Usage

__all__ = ["RunReport", "RunResult", "RunStatus"]


class RunStatus(StrEnum):
    """How a run ended. Only COMPLETED means a validated answer."""

    COMPLETED = "completed"
    """The answer passed validation."""
    PARTIAL = "partial"
    """A bound stopped the run (budget, limit, loop, rejections, failed tool); the best output is kept."""
    ESCALATED = "escalated"
    """Paused for a person; resumable."""
    FAILED = "failed"
    """Nothing useful could be produced."""
    REJECTED = "rejected"
    """A guard refused the input or the output."""
    RUNNING = "running"
    """Still in progress (or its process died before it finished); seen in the store, never in a result."""


@dataclass(frozen=True, slots=True)
class RunReport:
    """The status report of a run: what was done, what was not, and why."""

    reason: str
    """Why the run ended the way it did."""
    done: tuple[str, ...] = ()
    """Steps completed, one line each."""
    not_done: tuple[str, ...] = ()
    """What the run did not get to."""
    steps: int = 0
    """Model turns taken."""
    total_tokens: int = 0
    cost_usd: float = 0.0
    resume: str | None = None
    """The command that continues the run, when it can be continued."""

    def __str__(self) -> str:
        lines = [f"reason: {self.reason}"]
        lines += [f"done: {line}" for line in self.done]
        lines += [f"not done: {line}" for line in self.not_done]
        lines.append(f"steps: {self.steps}, tokens: {self.total_tokens}, cost: ${self.cost_usd:.6f}")
        if self.resume:
            lines.append(f"resume: {self.resume}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of `Agent.run`: never an exception for an exhausted budget or a tripped bound."""

    run_id: str
    status: RunStatus
    output: Any
    """The answer (text or the agent's typed output); the best partial result when not completed."""
    report: RunReport
    usage: Usage
    events: list[Event] = field(default_factory=list)
    """This run's journal, in order."""

    @property
    def ok(self) -> bool:
        """True when the run completed with a validated answer."""
        return self.status is RunStatus.COMPLETED
