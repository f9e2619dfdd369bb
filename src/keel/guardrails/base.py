"""What every guard shares: findings, verdicts, modes, and the context a guard judges a text in.

A guard looks at one text (a final output, an output handed to another agent, a user input, a tool result)
and returns a `Verdict`: the `Finding`s it made and the action its mode asks for. The pipeline carries the
action out and journals the verdict as a `guard_verdict` event. Findings never carry the matched text in
clear into the journal: `Finding.preview` is masked by the guard that made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = ["Action", "Finding", "Guard", "GuardContext", "Verdict"]

Action = Literal["pass", "flag", "redact", "block", "escalate"]
"""What the pipeline does with a text after a guard's verdict: let it through, let it through but mark it,
let a cleaned copy through, refuse it (the run ends REJECTED), or pause the run for a person."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a guard found in a text."""

    kind: str
    """What was found, such as ``"email"``, ``"payment_card"``, ``"unsupported_number"``, ``"role_override"``."""
    start: int
    """Offset of the first character in the text judged."""
    end: int
    """Offset after the last character."""
    preview: str
    """A journal-safe view of the span: masked for PII and secrets (``"d***@example.com"``), as is otherwise."""


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What a guard may compare a text with."""

    task: str = ""
    """The user's input to the run."""
    sources: Sequence[str] = ()
    """Everything else the run has seen: tool results, memory, documents (grounding compares against these)."""
    trusted_sources: Sequence[str] = ()
    """What the run saw from sources its owner controls: the agent's instructions and the output of tools declared
    ``@tool(trusted=True)`` (a subset of what `sources` and the instructions hold). `ExfiltrationGuard` trusts the
    hosts these and the task mention."""
    origin: Literal["input", "tool_output", "output", ""] = ""
    """Where the judged text comes from: the user's input, a tool's output, or an answer ("" when unknown).
    Asking for a tool is normal from the user and suspicious inside a tool's output."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's judgement of one text."""

    guard: str
    """The guard's name, as journaled."""
    action: Action
    """``"pass"`` when nothing was found; otherwise what the guard's mode asks for."""
    findings: tuple[Finding, ...] = ()
    text: str | None = None
    """The cleaned text when `action` is ``"redact"``; None otherwise."""
    detail: str = ""
    """One line for people: what was found, without the sensitive text itself."""
    scores: dict[str, float] = field(default_factory=dict)
    """Optional numbers behind the verdict (a risk score, a count), journaled as they are."""

    @property
    def passed(self) -> bool:
        """True when the guard found nothing."""
        return self.action == "pass"


@runtime_checkable
class Guard(Protocol):
    """Judges a text; pure and synchronous (guards run on every output, so they must be cheap)."""

    @property
    def name(self) -> str:
        """The guard's name, as journaled in its verdicts."""
        ...

    def check(self, text: str, context: GuardContext) -> Verdict:
        """Judge `text` in `context`."""
        ...
