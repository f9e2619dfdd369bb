"""The vocabulary `InjectionScreen`'s phrase rules are written in: the `Rule` type and shared fragments.

The fragments (who the text addresses, the words that point at the model's context, the nouns for its rules)
are used by the rules of `_injection_override` and `_injection_roles`; `_injection_patterns` assembles them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.guardrails import _injection_prefilter

__all__ = ["FLAGS", "GAP", "IGNORE_INSTRUCTIONS", "LEAD", "MODEL", "POINTER", "RULE_NOUN", "VERB_CALL", "Rule", "rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of prompt injection."""

    id: str
    """Stable name; a rule counts once in the score however often it matches."""
    kind: str
    """The `Finding.kind` its matches get."""
    weight: float
    """Its contribution to the score: 1.0 blocks alone at the default threshold, 0.5 needs company."""
    pattern: re.Pattern[str]
    """Matched against the folded (lower-case) view of the text."""
    data_only: bool = False
    """Counted only in data (tool output), not in what the user types: "add a tip to your answer" is a user's
    request, the same words in an email are an instruction planted for whoever reads it."""
    keys: _injection_prefilter.Needed | None = None
    """Literals every match contains (`_injection_prefilter.keys`): the rule reads only the text around them."""


FLAGS = re.IGNORECASE | re.MULTILINE

# A clause that addresses someone in the imperative: the start of the text, a line or a sentence, or an
# explicit "please" / "you must" / "I want you to". "I want to act as the account owner" does not qualify.
# Only spaces and tabs after the anchor, bounded: an open ``\s*`` there made runs of blank lines quadratic.
LEAD = (
    r"(?:(?:^|(?<=[.!?:;\n\"'(\[]))[ \t]{0,16}|\b(?:please|now|then|and|also|you\s+(?:will|must|should|shall|now|"
    r"need\s+to|have\s+to|are\s+to|are\s+going\s+to)|i\s+(?:want|need)\s+you\s+to|from\s+now\s+on,?)\s+)"
)
MODEL = (
    r"(?:ai|a\.i\.|(?:chat\s+|ai\s+)?assistant|llm|large\s+language\s+model|language\s+model|chat\s*bot|chatgpt|"
    r"gpt|claude|copilot)"
)
POINTER = (
    r"(?:all|any|every|your|previous|prior|preceding|above|earlier|initial|original|system|developer|safety|"
    r"existing|former|old)"
)
GAP = (
    r"(?:the|all|any|every|each|your|previous|prior|preceding|above|earlier|initial|original|system|developer|"
    r"safety|existing|former|old|of|these|those|other|given|current|and|or|foregoing|above-mentioned|hidden|"
    r"following|subsequent|"
    r"default|standard|core|built-in|internal)"
)
RULE_NOUN = (
    r"(?:instructions?|prompts?|rules|directions|directives?|guidelines|guidance|guardrails|constraints|"
    r"restrictions|polic(?:y|ies)|programming|prompting|commands|context|text|system\s+message)"
)
# "ignore all previous instructions", "disregard your rules", "forget the above instructions". Only words from a
# closed list may stand between verb and noun, one of them pointing at the model's context: "ignore the
# instructions on the box", "disregard previous shipping instructions" (the customer's own) and "ignore my
# previous email" stay clean.
IGNORE_INSTRUCTIONS = "".join(
    (
        r"\b(?:ignore|disregard|forget|override|bypass|discard|abandon|neglect|do\s+not\s+follow|don'?t\s+follow|"
        r"stop\s+following)\s+",
        rf"(?=(?:{GAP}\s+){{0,4}}?{POINTER}\b)",
        rf"(?:{GAP}\s+){{0,5}}?{RULE_NOUN}\b",
    )
)
VERB_CALL = r"(?:call|invoke|execute|trigger)"


def rule(rule_id: str, kind: str, weight: float, pattern: str, *, data_only: bool = False) -> Rule:
    compiled = re.compile(pattern, FLAGS)
    return Rule(rule_id, kind, weight, compiled, data_only, _injection_prefilter.keys(compiled))
