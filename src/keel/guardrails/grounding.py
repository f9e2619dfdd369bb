"""Grounding (G3, "hallucinated data"): claims in an answer that nothing the run saw supports.

`GroundingGuard` finds the checkable claims of an answer — identifiers (``A-1002``, ``C-100``, ``R-0001``,
tracking numbers, UUIDs), numbers, amounts and percentages, dates, emails and URLs — and looks for each in what
the run saw (`GuardContext.task` and `GuardContext.sources`: tool results, memory, documents). A claim that
appears nowhere, after normalisation, is *unsupported*: the model invented it or got it wrong. How claims are
normalised, and which numbers are never claims (0–10 in prose, "step 3", ordinals, times), is documented in
`keel.guardrails._claims`.

What it cannot see: a claim that is supported somewhere but wrong here (the right amount attached to the wrong
order), names and other free text, and arithmetic — a total the model computed from seen prices (2 × 24.50 =
$49.00) is unsupported unless the run saw it. Modes: ``"flag"`` lets the answer through marked, ``"escalate"``
pauses the run for a person, ``"block"`` refuses it; a verdict without unsupported claims is ``"pass"``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, get_args

from keel.errors import ConfigError
from keel.guardrails._claims import CLAIM_KINDS, Claim, extract_claims, number_keys_of_dates
from keel.guardrails.base import Finding, GuardContext, Verdict
from keel.guardrails.pii import PIIGuard

__all__ = ["GroundingGuard", "GroundingMode"]

GroundingMode = Literal["flag", "escalate", "block"]
"""What a verdict with unsupported claims asks the pipeline to do."""

_POOL: dict[str, str] = {
    "id": "id",
    "number": "numeric",
    "amount": "numeric",
    "date": "date",
    "email": "email",
    "url": "url",
}
_DOMAIN = re.compile(r"(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}\b", re.IGNORECASE)
_LISTED = 6  # unsupported claims named in Verdict.detail


@dataclass(frozen=True, slots=True)
class GroundingGuard:
    """A guard that reports the ids, numbers, amounts, dates, emails and URLs an answer has from nowhere."""

    mode: GroundingMode = "flag"
    """The action when there are unsupported claims: ``"flag"``, ``"escalate"`` or ``"block"``."""
    name: str = "grounding"
    """The guard's name, as journaled."""
    kinds: Collection[str] | None = None
    """The claim kinds to check (``"id"``, ``"number"``, ``"amount"``, ``"date"``, ``"email"``, ``"url"``);
    None checks all of them."""

    def __post_init__(self) -> None:
        if self.mode not in get_args(GroundingMode):
            raise ConfigError(f"GroundingGuard.mode must be one of flag, escalate, block; got {self.mode!r}")
        if self.kinds is None:
            return
        if isinstance(self.kinds, str):
            raise ConfigError(f"GroundingGuard.kinds must be a collection of kinds, not the string {self.kinds!r}")
        kinds = frozenset(self.kinds)
        unknown = sorted(kinds - set(CLAIM_KINDS))
        if unknown or not kinds:
            raise ConfigError(
                f"GroundingGuard.kinds must name some of {', '.join(CLAIM_KINDS)}; got {sorted(kinds) or 'none'}"
            )
        object.__setattr__(self, "kinds", kinds)

    def check(self, text: str, context: GuardContext) -> Verdict:
        """Find the claims of `text` that neither `context.task` nor any of `context.sources` supports."""
        claims = [
            claim
            for claim in extract_claims(text)
            if not claim.exempt and (self.kinds is None or claim.kind in self.kinds)
        ]
        seen = _Seen([context.task, *context.sources]) if claims else None
        unsupported = [claim for claim in claims if seen is not None and not seen.supports(claim)]
        scores = {"claims": float(len(claims)), "unsupported": float(len(unsupported))}
        if not unsupported:
            return Verdict(guard=self.name, action="pass", scores=scores)
        personal = PIIGuard().find(text)
        previews = [_preview(claim, personal) for claim in unsupported]
        findings = tuple(
            Finding(f"unsupported_{claim.kind}", claim.start, claim.end, preview)
            for claim, preview in zip(unsupported, previews, strict=True)
        )
        shown = zip(unsupported[:_LISTED], previews[:_LISTED], strict=True)
        listed = ", ".join(f"{claim.kind} {preview!r}" for claim, preview in shown)
        more = f" and {len(unsupported) - _LISTED} more" if len(unsupported) > _LISTED else ""
        detail = f"{len(unsupported)} of {len(claims)} claims not found in what the run saw: {listed}{more}"
        return Verdict(guard=self.name, action=self.mode, findings=findings, detail=detail, scores=scores)


class _Seen:
    """The normalised keys of every claim in what the run saw, by pool, and its text for exact look-ups."""

    def __init__(self, texts: list[str]) -> None:
        self.pools: dict[str, set[str]] = {pool: set() for pool in set(_POOL.values())}
        for text in texts:
            claims = extract_claims(text)
            for claim in claims:
                self.pools[_POOL[claim.kind]].update(claim.keys)
                if claim.kind == "date":
                    self.pools["date"].update(_date_generalisations(claim.keys))
                if claim.kind == "id":
                    digits = _trailing_digits(claim)
                    self.pools["id"].update(digits)
                    self.pools["numeric"].update(digits)
                if claim.kind == "url":
                    self.pools["url"].update(key.split("/", 1)[0] for key in claim.keys)
            self.pools["numeric"].update(number_keys_of_dates(claims))
            self.pools["url"].update(domain.casefold().removeprefix("www.") for domain in _DOMAIN.findall(text))
        self.haystack = "\n".join(texts).casefold()

    def supports(self, claim: Claim) -> bool:
        if claim.keys & self.pools[_POOL[claim.kind]]:
            return True
        if claim.kind in ("id", "email", "url"):
            # The exact text, between non-alphanumerics: an id in a shape the extractor does not read as one.
            pattern = r"(?<![0-9a-z])" + re.escape(claim.text.casefold()) + r"(?![0-9a-z])"
            return re.search(pattern, self.haystack) is not None
        return False


def _date_generalisations(keys: frozenset[str]) -> set[str]:
    # 2025-06-09 also supports "June 9" (--06-09) and "June 2025" (2025-06).
    return {form for key in keys if len(key) == 10 for form in (f"--{key[5:]}", key[:7])}


def _trailing_digits(claim: Claim) -> set[str]:
    # A-1002 also supports "#1002" and "order 1002".
    match = re.search(r"(\d+)$", claim.text)
    return {f"#{match.group(1)}"} if match else set()


def _preview(claim: Claim, personal: tuple[Finding, ...]) -> str:
    """The claim as journaled: masked when it is, or is part of, personal data or a secret.

    A claim inside such a span (a card's digit group) shows only the span's kind; emails are masked; a URL's
    query string and fragment are left out.
    """
    if claim.kind == "email":
        local, _, domain = claim.text.partition("@")
        return f"{local[:1]}***@{domain}"
    for found in personal:
        if found.start < claim.end and claim.start < found.end:
            return f"[{found.kind}]"
    if claim.kind == "url" and ("?" in claim.text or "#" in claim.text):
        return re.split(r"[?#]", claim.text, maxsplit=1)[0] + "?…"  # query strings carry tokens
    return claim.text
