"""Claims in a text — identifiers, numbers, amounts, dates, emails, URLs — with the keys they are compared by.

`GroundingGuard` extracts claims from an answer and from everything the run saw, and calls a claim supported
when one of its keys appears among the keys of what the run saw. Keys normalise what may differ between a tool
result and a faithful restatement of it:

- ids: case and separators (``A-1002`` = ``a-1002`` = ``A1002``); a bare ``#1002`` matches the digits of a
  seen id (``A-1002``);
- numbers and amounts: thousands separators, currency symbols and codes, trailing zeros (``$1,234.50`` =
  ``1234.5``); a percentage also matches its fraction (``20%`` = ``0.2``);
- dates: every unambiguous format becomes ISO (``June 9, 2025`` = ``9 June 2025`` = ``2025-06-09``); a numeric
  date whose day and month could be swapped (``06/03/2025``) keeps both readings; a date without a year matches
  that day in any year; a weekday that contradicts its date makes the claim unsupported;
- emails: case; URLs: scheme, ``www.``, trailing slash, query and fragment (host and path must match).

Hand-written rather than a library: the formats are few and fixed, spans must be exact, and ``dateutil``'s
fuzzy parser reads dates into ordinary prose ("May I", "3 of 10"). What is deliberately *not* a claim, so
never flagged: numbers 0–10 without a currency or percent sign (counts in prose: "2 items"), ordinals
("2nd"), numbers after an enumerating word ("step 3", "option 12", "page 4"), list markers ("3." at the
start of a line), times of day ("10:30", "9 am"), numbers written as words ("two weeks"), relative dates
("tomorrow"), and numbers with a decimal comma ("89,97 €", "1.234,50"), which are not read at all.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = ["CLAIM_KINDS", "Claim", "ClaimKind", "extract_claims", "number_keys_of_dates"]

ClaimKind = Literal["id", "number", "amount", "date", "email", "url"]
CLAIM_KINDS: Final[tuple[ClaimKind, ...]] = ("id", "number", "amount", "date", "email", "url")


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable statement of fact in a text."""

    kind: ClaimKind
    start: int
    end: int
    text: str
    keys: frozenset[str]
    """Normalised forms; the claim is supported when any of them is among the keys of what the run saw."""
    exempt: bool = False
    """A number the grounding rules never flag (see the module docstring); still counted as seen."""


_MONTHS: Final = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH: Final = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAYS: Final = {name.lower(): number for number, name in enumerate(calendar.day_name)}
_WEEKDAYS.update({name.lower(): number for number, name in enumerate(calendar.day_abbr)})
_WEEKDAY: Final = r"(?:(?P<weekday>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + r")\.?,?\s+)?"
_ORD: Final = r"(?:st|nd|rd|th)?"
_I = re.IGNORECASE

_URL: Final = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`|\\^{}]+", _I)
_BARE_URL: Final = re.compile(r"(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}/[^\s<>\"'`|\\^{}]*", _I)
_EMAIL: Final = re.compile(r"(?<![\w.+-])[\w.+%-]+@(?:[a-z0-9-]+\.)+[a-z]{2,24}\b", _I)
_DATES: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(
        r"\b(?P<year>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
        r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d-])"
    ),
    re.compile(r"\b(?P<year>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})\b"),
    re.compile(
        r"\b"
        + _WEEKDAY
        + _MONTH
        + r"\s+(?P<d>\d{1,2})"
        + _ORD
        + r"(?:,?\s+(?P<year>\d{4})(?![-/.]?\d))?\b(?![:.,]?\d)",
        _I,
    ),
    re.compile(
        r"\b"
        + _WEEKDAY
        + r"(?P<d>\d{1,2})"
        + _ORD
        + r"\s+(?:of\s+)?"
        + _MONTH
        + r"(?:,?\s+(?P<year>\d{4})(?![-/.]?\d))?\b",
        _I,
    ),
    re.compile(r"\b" + _MONTH + r",?\s+(?P<year>\d{4})\b", _I),
    # 06/03/2025, 06/03/25, 03.06.2025 (a two-digit year only with slashes: "3.14.15" is a version)
    re.compile(
        r"\b(?P<a>\d{1,2})(?:(?P<slash>/)|\.)(?P<b>\d{1,2})(?(slash)/|\.)(?P<year>\d{4}|(?(slash)\d{2}|(?!)))\b"
        r"(?![.,]?\d)"
    ),
)
_TIME: Final = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?(?!\w)|\b\d{1,2}\s?[ap]\.?m\.?(?!\w)", _I)
_IDS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", _I),
    # A-1002, C-100, R-0001, BTS-W38, INV_2025_0042, A1002
    re.compile(r"(?<![\w-])[a-z]{1,10}(?:[-_][a-z]{1,10})*[-_#]?\d[a-z0-9]*(?:[-_][a-z0-9]+)*\b", _I),
    # tracking numbers like 1Z999AA10123456784 (digits first, letters inside)
    re.compile(r"(?<![\w-])\d[a-z0-9]*[a-z][a-z0-9]*\b", _I),
    re.compile(r"(?<![\w#$€£.,-])#?\d{9,}(?![\w.,]\d)|(?<![\w#])#\d{3,}\b|\b\d+(?:-\d+){2,}\b"),
)
_NUMBER: Final = re.compile(
    r"(?<![\w.,/-])(?P<pre>(?:US|CA|AU)?\$|€|£|¥|(?:USD|EUR|GBP|CAD|AUD|JPY|CHF)\s?)?"
    r"(?P<num>-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)(?![.,/]?\d)"
    r"(?P<pct>\s?%)?(?P<post>\s?(?:USD|EUR|GBP|CAD|AUD|JPY|CHF|dollars?|euros?|pounds?)\b)?"
    r"(?P<suffix>[a-z]+)?",
    _I,
)
_ENUMERATOR: Final = re.compile(
    r"\b(?:steps?|items?|options?|points?|parts?|phases?|stages?|sections?|chapters?|questions?|rules?|tips?|"
    r"notes?|lines?|pages?|paragraphs?|figures?|tables?|levels?|tiers?|rounds?|versions?|v)\s*$",
    _I,
)
_LIST_MARKER: Final = re.compile(r"(?:^|\n)[ \t]*$")


def extract_claims(text: str) -> list[Claim]:
    """Every claim in `text`, in order; a span belongs to the first extractor that matches it."""
    claims: list[Claim] = []
    taken = bytearray(len(text))  # 1 where an earlier extractor already matched: linear in the text's length
    for found in _extractors(text):
        start, end = (found.start, found.end) if isinstance(found, Claim) else found
        if taken.find(1, start, end) == -1:
            taken[start:end] = b"\x01" * (end - start)
            if isinstance(found, Claim):
                claims.append(found)
    claims.sort(key=lambda claim: claim.start)
    return claims


def _extractors(text: str) -> Iterator[Claim | tuple[int, int]]:
    """Claims, and spans that are no claim but must not be read as one (times of day), most specific first."""
    for match in _URL.finditer(text):
        yield _url_claim(match.group().rstrip(".,;:!?)]'\""), match.start())
    for match in _BARE_URL.finditer(text):
        yield _url_claim(match.group().rstrip(".,;:!?)]'\""), match.start())
    for match in _EMAIL.finditer(text):
        yield Claim("email", match.start(), match.end(), match.group(), frozenset({match.group().casefold()}))
    for pattern in _DATES:
        for match in pattern.finditer(text):
            claim = _date_claim(match)
            if claim is not None:
                yield claim
    for match in _TIME.finditer(text):
        yield match.start(), match.end()
    for pattern in _IDS:
        for match in pattern.finditer(text):
            claim = _id_claim(match.group(), match.start())
            if claim is not None:
                yield claim
    for match in _NUMBER.finditer(text):
        claim = _number_claim(text, match)
        if claim is not None:
            yield claim


def _url_claim(url: str, start: int) -> Claim:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = (parts.hostname or "").casefold().removeprefix("www.")
    path = parts.path.rstrip("/").casefold()
    return Claim("url", start, start + len(url), url, frozenset({f"{host}{path}"}))


def _date_claim(match: re.Match[str]) -> Claim | None:
    groups = match.groupdict()
    month_word = groups.get("month")
    if month_word == "may":
        return None  # "you may 2 …": only a capitalised May is a month
    year = _year(groups.get("year"))
    if month_word is not None:
        readings = [(year, _MONTHS[month_word.lower()], int(groups["d"]) if groups.get("d") else None)]
    elif groups.get("a"):
        first, second = int(groups["a"]), int(groups["b"])
        readings = [(year, first, second), (year, second, first)]  # US month/day, then day/month
    else:
        readings = [(year, int(groups["m"]), int(groups["d"]))]
    weekday = groups.get("weekday")
    keys = set()
    for y, m, d in readings:
        key = _date_key(y, m, d, None if weekday is None else _WEEKDAYS[weekday.lower()])
        if key:
            keys.add(key)
    if not keys and groups.get("a"):
        return None  # "3.14.15" is no date
    return Claim("date", match.start(), match.end(), match.group(), frozenset(keys))


def _year(text: str | None) -> int | None:
    if text is None:
        return None
    year = int(text)
    return year + 2000 if year < 100 else year


def _date_key(year: int | None, month: int, day: int | None, weekday: int | None) -> str | None:
    if not 1 <= month <= 12:
        return None
    if day is None:
        return f"{year:04d}-{month:02d}" if year is not None else None
    try:
        date = dt.date(year if year is not None else 2000, month, day)  # 2000 is a leap year: Feb 29 is valid
    except ValueError:
        return None
    if year is None:
        return f"--{month:02d}-{day:02d}"
    if weekday is not None and date.weekday() != weekday:
        return None  # "Tuesday, June 9, 2025" is no date: June 9, 2025 is a Monday
    return date.isoformat()


def _id_claim(text: str, start: int) -> Claim | None:
    digits = sum(char.isdigit() for char in text)
    letters = sum(char.isalpha() for char in text)
    separated = any(char in "-_#" for char in text.strip("#"))
    if letters and not separated and (digits < 2 or len(text) < 4):
        return None  # MP3, Q3, v2, 4K: not identifiers
    if text[0].isdigit() and letters and (len(text) < 10 or digits < 5):
        return None  # 45L, 2kg, 20000mAh: quantities with units
    key = re.sub(r"[^0-9a-z]", "", text.casefold())
    keys = {key}
    if not letters:
        keys.add(f"#{key}")  # "#1002", "1002-000-111": compared by digits
    return Claim("id", start, start + len(text), text, frozenset(keys))


def _number_claim(text: str, match: re.Match[str]) -> Claim | None:
    suffix = match.group("suffix")
    if suffix and suffix.lower() in {"st", "nd", "rd", "th"}:
        return None  # an ordinal: "2nd"
    try:
        value = Decimal(match.group("num").replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
        return None
    currency = bool(match.group("pre") or match.group("post"))
    percent = bool(match.group("pct"))
    kind: ClaimKind = "amount" if currency else "number"
    keys = {_decimal_key(value)}
    if percent:
        keys.add(_decimal_key(value / 100))
    bare_integer = not currency and not percent and value == value.to_integral_value()
    if bare_integer:
        keys.add(f"#{match.group('num').replace(',', '').lstrip('-')}")  # "order 1002" may name A-1002
    before = text[: match.start()]
    exempt = bare_integer and (
        0 <= value <= 10 or _ENUMERATOR.search(before[-24:]) is not None or _list_marker(text, match)
    )
    return Claim(kind, match.start(), match.end(), match.group(), frozenset(keys), exempt)


def _list_marker(text: str, match: re.Match[str]) -> bool:
    after = text[match.end("num") : match.end("num") + 1]
    return after in {".", ")"} and _LIST_MARKER.search(text[: match.start()]) is not None


def _decimal_key(value: Decimal) -> str:
    return format(value.normalize(), "f")


def number_keys_of_dates(claims: list[Claim]) -> set[str]:
    """The years of the dates in `claims`, as number keys ("in 2025" restates a date of 2025)."""
    return {key[:4] for claim in claims if claim.kind == "date" for key in claim.keys if key[:4].isdigit()}
