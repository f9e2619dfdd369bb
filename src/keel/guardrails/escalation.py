"""`Escalation`: when a run must stop and ask a person (G4), including the taint rule (G5).

A trigger pauses the run with status ESCALATED and puts an item in the `ReviewQueue`; nothing the item is
about has happened yet. Once a person decides, ``keel resume RUN_ID`` (or ``await agent.resume(run_id)``)
continues the run: an approved action runs, exactly once; a denied one is reported to the model as denied.

The triggers:

- **severity**: a tool call at or above `severity` always waits for a person.
- **taint**: once the run has read untrusted data (the output of a tool not declared ``trusted=True``, or a
  task the injection screen flagged), a tool call at or above `after_untrusted` waits for a person, whatever
  the model says: the arguments may have been written by whoever wrote that data.
- **confidence**: a final answer, or a side-effecting tool call, whose confidence is below `min_confidence`.
  Confidence is the lowest of what is known: the model's self-report (`ModelResponse.confidence`), a
  ``confidence`` field of a typed answer, and `scorer` (your function, judging the answer's text).
- **cost**: the next model call would take the run's spend past `max_cost_usd`. An approval lets the run spend
  another `max_cost_usd` before asking again (the hard `Budget` still applies); a denial ends it PARTIAL.
- **guards**: an output guard in ``mode="escalate"`` holds the answer for a person; with
  ``on_guard_failure="escalate"`` a guard that would block the answer holds it instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from keel.errors import ConfigError
from keel.guardrails.base import GuardContext
from keel.tools.tool import SEVERITIES, Severity, Tool

__all__ = ["Escalation", "Trigger", "severity_rank"]

Trigger = Literal["severity", "taint", "confidence", "cost", "guard", "failure", "loop", "interrupted"]
"""What paused a run: journaled with each `escalated` event."""

ConfidenceScorer = Callable[[str, GuardContext], float | None]
"""Scores a final answer's text in [0, 1]; None when it cannot tell."""


def severity_rank(severity: str) -> int:
    """0 for ``"low"`` up to 3 for ``"critical"``: higher is more harmful (and reviewed first)."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True, slots=True)
class Escalation:
    """When a run pauses for a person. The default holds critical tools always, high ones after untrusted data.

    Args:
        min_confidence: answers and side-effecting calls with a lower confidence wait for a person (0..1).
        max_cost_usd: the run pauses before a model call that would take its spend past this, and again at
            every further multiple once approved.
        severity: tool calls at or above this severity always wait for a person; None for never.
        after_untrusted: once the run has read untrusted data, tool calls at or above this severity wait for a
            person; None turns the taint rule off.
        on_guard_failure: ``"reject"`` (a guard that blocks the answer ends the run REJECTED) or ``"escalate"``
            (a person sees the answer and may release it).
        scorer: a confidence score for a final answer, ``scorer(text, context) -> float | None``.
    """

    min_confidence: float | None = None
    max_cost_usd: float | None = None
    severity: Severity | None = "critical"
    after_untrusted: Severity | None = "high"
    on_guard_failure: Literal["reject", "escalate"] = "reject"
    scorer: ConfidenceScorer | None = None

    def __post_init__(self) -> None:
        confidence = self.min_confidence
        if confidence is not None and (
            isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1
        ):
            raise ConfigError(f"Escalation(min_confidence=…) must be between 0 and 1, got {confidence!r}")
        cost = self.max_cost_usd
        if cost is not None and (
            isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost) or cost <= 0
        ):
            raise ConfigError(f"Escalation(max_cost_usd=…) must be a positive amount, got {cost!r}")
        for name in ("severity", "after_untrusted"):
            value = getattr(self, name)
            if value is not None and value not in SEVERITIES:
                raise ConfigError(f"Escalation({name}=…) must be one of {SEVERITIES} or None, got {value!r}")
        if self.on_guard_failure not in ("reject", "escalate"):
            raise ConfigError(
                f"Escalation(on_guard_failure=…) must be 'reject' or 'escalate', got {self.on_guard_failure!r}"
            )
        if self.scorer is not None and not callable(self.scorer):
            raise ConfigError(f"Escalation(scorer=…) must be a function (text, context) -> float, got {self.scorer!r}")

    def tool_call_trigger(
        self, tool: Tool, *, tainted_by: str | None, confidence: float | None
    ) -> tuple[Trigger, str] | None:
        """What makes a call of `tool` wait for a person, and why in words; None when it may run."""
        rank = severity_rank(tool.severity)
        if self.severity is not None and rank >= severity_rank(self.severity):
            return (
                "severity",
                f"{tool.name} has severity {tool.severity}; calls at or above {self.severity} need approval",
            )
        if tainted_by is not None and self.after_untrusted is not None and rank >= severity_rank(self.after_untrusted):
            return "taint", (
                f"{tool.name} has severity {tool.severity} and the run has read untrusted data ({tainted_by}); "
                "its arguments may come from that data"
            )
        if tool.side_effects and confidence is not None and self.confidence_too_low(confidence):
            return "confidence", (
                f"{tool.name} changes the world and the model's confidence is {confidence:.2f}, "
                f"below {self.min_confidence}"
            )
        return None

    def confidence_too_low(self, confidence: float | None) -> bool:
        """True when a known confidence is below `min_confidence`."""
        return self.min_confidence is not None and confidence is not None and confidence < self.min_confidence
