"""`LoopDetector`: a run that keeps returning to where it was, or stops learning anything, is stopped (E4).

After every step (a model turn and its tool calls) the pipeline hashes the step's state — each call in canonical
form with a digest of what came back — and journals it as a `checkpoint`. The detector reads those hashes:

- **repeat**: the same calls with the same results as a step before (the hallucinated tool retried forever, a
  lookup repeated with nothing new to learn), including cycles (A-B-A-B: a state seen two steps ago);
- **no progress**: `max_idle_steps` steps in a row whose results were all seen before.

The first time, the model gets one nudge ("you are repeating …"), when `nudge` is on; the next time the loop
is broken: the run ends PARTIAL with a best-effort answer, or pauses for a person (``on_loop="escalate"``).
The detector is pure bookkeeping over hashes, so a resumed run rebuilds it exactly from the journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from keel.errors import ConfigError

__all__ = ["LoopDetector", "LoopFinding", "LoopMemory", "OnLoop"]

OnLoop = Literal["partial", "escalate"]
"""What breaking a loop does: end the run PARTIAL (with a best-effort answer), or pause it for a person."""


@dataclass(slots=True)
class LoopMemory:
    """What the detector has seen in one run."""

    last_seen: dict[str, int] = field(default_factory=dict)
    """State hash → the last step it was seen at."""
    visits: dict[str, int] = field(default_factory=dict)
    """State hash → how many times it was reached."""
    seen: set[str] = field(default_factory=set)
    """Digests of every result the run has had."""
    idle: int = 0
    """Steps in a row that brought nothing new."""
    steps: int = 0
    nudged: bool = False
    """The model has had its nudge: the next loop is broken."""


@dataclass(frozen=True, slots=True)
class LoopFinding:
    """A loop the detector found at one step."""

    kind: Literal["repeat", "no_progress"]
    state_hash: str
    step: int
    period: int = 0
    """For a repeat: how many steps ago the state was last seen (1: the same step again; 2: an A-B-A cycle)."""

    @property
    def detail(self) -> str:
        """One line for the report and the journal."""
        if self.kind == "no_progress":
            return f"{self.period} steps in a row brought no new information"
        if self.period == 1:
            return "the same tool calls returned the same results as the step before"
        return f"the run returned to the state it was in {self.period} steps ago (a cycle)"


@dataclass(frozen=True, slots=True)
class LoopDetector:
    """Detects loops and no-progress runs from the per-step state hashes (see the module docstring)."""

    max_visits: int | None = 2
    """A state reached this many times is a loop (2: the first return); None turns repeat detection off."""
    max_idle_steps: int | None = 4
    """Steps in a row without new information that make a loop; None turns no-progress detection off."""
    nudge: bool = True
    """Tell the model once that it is repeating itself before breaking the loop."""
    on_loop: OnLoop = "partial"
    """What breaking the loop does: ``"partial"`` or ``"escalate"``."""

    def __post_init__(self) -> None:
        for name in ("max_visits", "max_idle_steps"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"LoopDetector.{name} must be a whole number of at least 2 (or None), got {value!r}")
        if self.on_loop not in get_args(OnLoop):
            raise ConfigError(f"LoopDetector.on_loop must be 'partial' or 'escalate', got {self.on_loop!r}")

    def observe(self, memory: LoopMemory, state_hash: str, digests: Iterable[str]) -> LoopFinding | None:
        """Record one step's state; the loop it closes, if any."""
        memory.steps += 1
        step = memory.steps
        fresh = [digest for digest in digests if digest not in memory.seen]
        memory.seen.update(fresh)
        memory.idle = 0 if fresh else memory.idle + 1
        last = memory.last_seen.get(state_hash)
        memory.last_seen[state_hash] = step
        memory.visits[state_hash] = visits = memory.visits.get(state_hash, 0) + 1
        if self.max_visits is not None and last is not None and visits >= self.max_visits:
            return LoopFinding("repeat", state_hash, step, period=step - last)
        if self.max_idle_steps is not None and memory.idle >= self.max_idle_steps:
            return LoopFinding("no_progress", state_hash, step, period=memory.idle)
        return None

    def forget(self, memory: LoopMemory) -> None:
        """Start afresh (a person let the run go on): earlier states no longer count as returns."""
        memory.visits.clear()
        memory.last_seen.clear()
        memory.idle = 0
        memory.nudged = False
