"""Guardrails: guards that judge inputs and outputs, and the types they share (G3, G5).

- `InjectionScreen` screens the task and untrusted tool output for prompt injection; flagged tool output is
  quarantined (`quarantine`) before the model reads it.
- `PIIGuard` finds personal data and secrets in an answer and redacts, blocks or escalates; `redact_pii`
  cleans any text.
- `LengthGuard` holds answers to a number of characters (and lines): truncate, block, escalate or flag.
- `GroundingGuard` flags ids, numbers, amounts, dates, emails and URLs the run never saw.
- `Escalation` says when a run pauses for a person: severe tools, tools after untrusted data (taint), low
  confidence, spend past a threshold, guards that want a person.
- `ReviewQueue` is the persisted queue of actions waiting for a person (approve / deny, first decision wins).

- `ExfiltrationGuard` strips images and flags links in an answer that point to hosts no trusted source of the
  run mentioned (data exfiltration through URLs).

An agent that configures no guards gets ``[InjectionScreen(), PIIGuard(mode="redact"), ExfiltrationGuard()]``.
"""

from __future__ import annotations

from keel.guardrails.base import Action, Finding, Guard, GuardContext, Verdict
from keel.guardrails.escalation import Escalation
from keel.guardrails.exfiltration import ExfiltrationGuard, ExfiltrationMode
from keel.guardrails.grounding import GroundingGuard, GroundingMode
from keel.guardrails.injection import InjectionScreen, quarantine
from keel.guardrails.length import LengthGuard, LengthMode
from keel.guardrails.pii import PII_KINDS, PIIGuard, PIIKind, PIIMode, redact_pii
from keel.guardrails.review import ReviewItem, ReviewQueue

__all__ = [
    "PII_KINDS",
    "Action",
    "Escalation",
    "ExfiltrationGuard",
    "ExfiltrationMode",
    "Finding",
    "Guard",
    "GuardContext",
    "GroundingGuard",
    "GroundingMode",
    "InjectionScreen",
    "LengthGuard",
    "LengthMode",
    "PIIGuard",
    "PIIKind",
    "PIIMode",
    "ReviewItem",
    "ReviewQueue",
    "Verdict",
    "quarantine",
    "redact_pii",
]
