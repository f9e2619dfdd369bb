"""Error recovery (E1, E4): bounded retries with backoff, and loop detection.

- `RetryPolicy` bounds how often and how patiently a failed tool or model call is tried again.
- `LoopDetector` notices a run that keeps returning to a state it has seen, or stops learning anything new.
- `ProcessOwner` and `find_interrupted` tell a run whose process died from one still running.

The failure chain itself (retry → alternative → degrade → escalate) is a step of the governed pipeline
(`keel._pipeline.recover`), so every pattern gets it the same way.
"""

from __future__ import annotations

from keel.recovery.loop import LoopDetector, LoopFinding, LoopMemory, OnLoop
from keel.recovery.owner import Interrupted, ProcessOwner, find_interrupted
from keel.recovery.retry import NO_RETRY, RetryPolicy

__all__ = [
    "NO_RETRY",
    "Interrupted",
    "LoopDetector",
    "LoopFinding",
    "LoopMemory",
    "OnLoop",
    "ProcessOwner",
    "RetryPolicy",
    "find_interrupted",
]
