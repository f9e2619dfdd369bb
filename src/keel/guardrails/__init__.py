"""Guardrails: guards that judge inputs and outputs (PII, grounding, injection) and the types they share."""

from __future__ import annotations

from keel.guardrails.base import Action, Finding, Guard, GuardContext, Verdict

__all__ = ["Action", "Finding", "Guard", "GuardContext", "Verdict"]
