"""PII leakage (G3): find personal data and secrets in a text, then redact it, block it or escalate it.

`PIIGuard` runs the detectors of `_pii_detectors` (one per kind), merges overlapping spans (the longest
wins, so an IBAN is not also reported as a phone number inside it) and turns them into `Finding`s whose
previews are masked: the journal records where and what kind, never the value in clear. Redaction replaces a
whole span with its kind in brackets (``[email]``), never a partial value.

Validation is delegated to maintained, offline libraries: `phonenumbers` (Google's libphonenumber
metadata) for phone numbers, `python-stdnum` for Luhn, IBAN and national identity numbers, the standard
library's `ipaddress` for IP addresses.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, get_args

import phonenumbers

from keel.errors import ConfigError
from keel.guardrails._pii_detectors import DETECTORS, PIIKind, Span, find_phones
from keel.guardrails.base import Finding, GuardContext, Verdict

__all__ = ["PII_KINDS", "PIIGuard", "PIIKind", "PIIMode", "redact_pii"]

PIIMode = Literal["redact", "block", "escalate"]
"""What `PIIGuard` asks for when it finds something: a cleaned copy, a refusal, or a person's decision."""

PII_KINDS: tuple[PIIKind, ...] = get_args(PIIKind)
"""Every kind `PIIGuard` detects."""


class PIIGuard:
    """Finds personal data and secrets in a text; redacts, blocks or escalates per `mode`.

    Kinds: ``email``, ``phone``, ``payment_card`` (Luhn-valid, known issuer), ``iban`` (valid checksum),
    ``us_ssn``, ``national_id`` (Spanish DNI/NIE, Italian codice fiscale, UK NINO; Dutch BSN and Canadian SIN
    after a context word), ``ip_address``, ``secret`` (API keys by vendor prefix, private keys, JWTs, bearer
    tokens, passwords in URLs and assignments) and ``high_entropy`` (generated-looking strings of 24+
    characters). A plain class rather than a frozen dataclass because the `Guard` protocol declares `name`
    as a settable attribute.

    Example:
        >>> guard = PIIGuard()
        >>> guard.check("Mail jane@example.com", GuardContext()).text
        'Mail [email]'
    """

    __slots__ = ("_detectors", "_kinds", "_mode", "name")

    def __init__(
        self,
        mode: PIIMode = "redact",
        kinds: PIIKind | Iterable[PIIKind] | None = None,
        name: str = "pii",
        *,
        phone_region: str = "US",
    ) -> None:
        """Configure the guard.

        Args:
            mode: ``"redact"`` (the default: let a cleaned copy through), ``"block"`` or ``"escalate"``.
            kinds: the kind or kinds to detect; None for all of `PII_KINDS`.
            name: the guard's name in verdicts and the journal.
            phone_region: the region whose national phone format is recognized (ISO 3166 alpha-2); numbers
                of every other country are recognized in international ``+CC`` format.

        Raises:
            ConfigError: an unknown mode, kind or phone region, or an empty `kinds`.
        """
        if mode not in get_args(PIIMode):
            raise ConfigError(f"PIIGuard mode must be one of {', '.join(get_args(PIIMode))}, not {mode!r}")
        if kinds is None:
            chosen: tuple[PIIKind, ...] = PII_KINDS
        elif isinstance(kinds, str):
            chosen = (kinds,)  # one kind, not its letters
        else:
            chosen = tuple(dict.fromkeys(kinds))
        unknown = [kind for kind in chosen if kind not in PII_KINDS]
        if unknown:
            raise ConfigError(f"unknown PII kind(s) {', '.join(map(repr, unknown))}; known: {', '.join(PII_KINDS)}")
        if not chosen:
            raise ConfigError("PIIGuard needs at least one kind (kinds=None detects all)")
        if phone_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"unknown phone region {phone_region!r}: use an ISO 3166 alpha-2 code such as 'US'")
        self.name = name
        self._mode: PIIMode = mode
        self._kinds = frozenset(chosen)
        detectors: dict[PIIKind, Callable[[str], Iterator[Span]]] = dict(DETECTORS)
        detectors["phone"] = functools.partial(find_phones, region=phone_region.upper())
        self._detectors = [(kind, detector) for kind, detector in detectors.items() if kind in self._kinds]

    @property
    def mode(self) -> PIIMode:
        """What the guard asks for when it finds something."""
        return self._mode

    @property
    def kinds(self) -> frozenset[PIIKind]:
        """The kinds the guard detects."""
        return self._kinds

    def __repr__(self) -> str:
        return f"PIIGuard(mode={self._mode!r}, kinds={sorted(self._kinds)!r}, name={self.name!r})"

    def find(self, text: str) -> tuple[Finding, ...]:
        """The findings in `text`, in text order, without overlaps; previews masked."""
        candidates = [
            (kind, start, end) for kind, detector in self._detectors for start, end in detector(text) if end > start
        ]
        return tuple(Finding(kind, start, end, _mask(kind, text[start:end])) for kind, start, end in _merge(candidates))

    def check(self, text: str, context: GuardContext) -> Verdict:
        """Judge `text`; `context` is not consulted: leaked data is leaked whoever mentioned it first."""
        findings = self.find(text)
        if not findings:
            return Verdict(guard=self.name, action="pass")
        counts = Counter(finding.kind for finding in findings)
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
        return Verdict(
            guard=self.name,
            action=self._mode,
            findings=findings,
            text=_redact(text, findings) if self._mode == "redact" else None,
            detail=f"found {summary}",
            scores={kind: float(count) for kind, count in counts.items()},
        )


def _merge(candidates: list[tuple[PIIKind, int, int]]) -> list[tuple[PIIKind, int, int]]:
    """Overlapping spans resolved: the longest wins; a tie goes to the more specific kind (`DETECTORS` order)."""
    order = {kind: index for index, kind in enumerate(DETECTORS)}
    starts: list[int] = []  # the kept spans are disjoint, so sorted by start they are sorted by end too
    kept: list[tuple[PIIKind, int, int]] = []
    for kind, start, end in sorted(set(candidates), key=lambda c: (c[1] - c[2], order[c[0]], c[1])):
        index = bisect.bisect_left(starts, start)
        if index > 0 and kept[index - 1][2] > start:
            continue
        if index < len(kept) and kept[index][1] < end:
            continue
        starts.insert(index, start)
        kept.insert(index, (kind, start, end))
    return kept


def _redact(text: str, findings: Iterable[Finding]) -> str:
    """`text` with every finding replaced by its kind in brackets."""
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position : finding.start])
        parts.append(f"[{finding.kind}]")
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


# --- masked previews -----------------------------------------------------------------------------------------

_SECRET_PREFIX = re.compile(
    r"^(?:-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|sk-ant-|sk-proj-|sk-|[sr]k_(?:live|test)_|whsec_|AKIA|ASIA|"
    r"gh[pousr]_|github_pat_|glpat-|xox[baprs]-|AIza|npm_|hf_|SG\.|eyJ)"
)


def _mask_digits(value: str, keep_last: int) -> str:
    """Every digit and letter replaced by ``*`` except the last `keep_last` ones; separators kept."""
    total = sum(char.isalnum() for char in value)
    seen = 0
    out: list[str] = []
    for char in value:
        if char.isalnum():
            seen += 1
            out.append(char if seen > total - keep_last else "*")
        else:
            out.append(char)
    return "".join(out)


def _mask(kind: PIIKind, value: str) -> str:
    """A journal-safe preview of `value`: enough to recognize the item, never enough to use it.

    Emails keep their first letter and domain; cards keep the last four digits (what a receipt shows);
    IBANs their country code and last four; phones their last two digits; IPv4 addresses their first
    octet; secrets their public vendor prefix. National IDs and high-entropy strings show nothing.
    """
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind == "payment_card":
        return _mask_digits(value, 4)
    if kind == "iban":
        return value[:2] + _mask_digits(value[2:], 4)
    if kind == "phone":
        return _mask_digits(value, 2)
    if kind == "ip_address":
        if "." in value and ":" not in value:
            first, _, rest = value.partition(".")
            return first + "." + re.sub(r"\d", "*", rest)
        return value.split(":", 1)[0] + ":…"
    if kind == "secret":
        prefix = _SECRET_PREFIX.match(value)
        return (prefix.group() if prefix else "") + "…[redacted]"
    if kind == "high_entropy":
        return f"…[redacted {len(value)} chars]"
    return _mask_digits(value, 0)


_DEFAULT = PIIGuard()


def redact_pii(text: str) -> str:
    """`text` with every kind of PII and secret replaced by its kind in brackets (``[email]``).

    For redacting payloads outside a guard (journal entries, logs); same detectors as ``PIIGuard()``.
    """
    findings = _DEFAULT.find(text)
    return _redact(text, findings) if findings else text
