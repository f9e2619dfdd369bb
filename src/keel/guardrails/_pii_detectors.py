"""The PII detectors behind `PIIGuard`: one function per kind, each yielding the spans it is sure of.

Every detector trades recall for precision the same way: a candidate found by a cheap pattern must also pass
the check its kind has (a Luhn digit, an IBAN checksum, `phonenumbers`' numbering plans, `ipaddress`, a
national ID's own validator from `python-stdnum`), and numbers whose only evidence is their length (a bare
9-digit BSN or SIN) need a context word in front. Labels in front of a number that make it plainly an
identifier ("order", "tracking", "invoice #") veto phone and card matches, because support text is full of
order and tracking numbers that happen to be valid phone numbers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import Literal

import phonenumbers
from stdnum import iban, luhn

from keel.guardrails._pii_ids import find_national_ids, find_us_ssns
from keel.guardrails._pii_labels import ID_LABEL, Span, has_label
from keel.guardrails._pii_secrets import find_high_entropy, find_secrets

__all__ = ["DETECTORS", "PIIKind", "Span", "find_phones"]

PIIKind = Literal[
    "email",
    "phone",
    "payment_card",
    "iban",
    "us_ssn",
    "national_id",
    "ip_address",
    "secret",
    "high_entropy",
]

_has_label = has_label
_ID_LABEL = ID_LABEL


# --- email ---------------------------------------------------------------------------------------------------

# Letters and digits in any script (\w without "_"), so "josé@ejemplo.es" and IDN domains count. An apostrophe may
# be inside the local part (o'brien@…) but also just before the address: Python shows strings in single quotes.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[^\W_][\w.%+'-]{0,63}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,24}|xn--[a-z0-9]{1,59})(?![\w-])"
)
# "user:password@host" inside a URL is a credential (see `_URL_CREDENTIALS`), not an address.
_IN_URL_AUTHORITY = re.compile(r"://[^\s/@]*$")


def find_emails(text: str) -> Iterator[Span]:
    """Email addresses; the domain needs a dot and a letter TLD, so ``root@localhost`` is not one."""
    for match in _EMAIL.finditer(text):
        if not _IN_URL_AUTHORITY.search(text, max(0, match.start() - 200), match.start()):
            yield match.span()


# --- phone ---------------------------------------------------------------------------------------------------


def find_phones(text: str, region: str = "US") -> Iterator[Span]:
    """Numbers valid in `region`'s national or the international format, or phone-shaped after a phone label.

    Phone-shaped numbers count right after a phone label ("Phone:", "call me on", "mobile"), valid in a numbering
    plan or not.

    ``Leniency.VALID`` checks each number against the numbering plan of its country and refuses matches glued
    to letters, so ids such as ``A-1002`` and tracking numbers such as ``JD0146…`` do not match; dates and
    amounts are refused by the matcher itself.
    """
    found: list[Span] = []
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        if _has_label(text, match.start, _ID_LABEL):
            continue
        if match.raw_string.isdigit() and not _has_label(text, match.start, _PHONE_LABEL):
            continue  # a bare run of digits is an id or a number ("2025000123", "RF-2025-000123") unless called a phone
        if match.start > 0 and text[match.start - 1] == "-" and match.start > 1 and text[match.start - 2].isalnum():
            continue  # glued to an id's prefix: "A-2125550123"
        found.append((match.start, match.end))
        yield match.start, match.end
    for shape in _PHONE_SHAPE.finditer(text):
        if not 7 <= sum(c.isdigit() for c in shape.group()) <= 15 or _NOT_PHONE.fullmatch(shape.group()):
            continue
        if any(start < shape.end() and shape.start() < end for start, end in found):
            continue
        if _has_label(text, shape.start(), _PHONE_LABEL) and not _has_label(text, shape.start(), _ID_LABEL):
            yield shape.span()


_PHONE_LABEL = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|call|text|sms|whatsapp|fax|number|reach|ring|dial)\b"
    r"(?:\s+(?:me|us|him|her|them))?(?:\s+(?:at|on|is))?\W{0,6}$",
    re.IGNORECASE,
)
_PHONE_SHAPE = re.compile(r"(?<![\w.+-])\+?(?:\(\d{1,4}\)[ .-]?)?\d{1,8}(?:[ .-]\(?\d{1,8}\)?){0,5}(?![\w-]|[.,]\d)")
# Shapes a phone label may still precede that are no phone: dates and a US SSN.
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{3}-\d{2}-\d{4}")


# --- payment card -------------------------------------------------------------------------------------------

# Runs of digit groups; possessive so a long run of numbers is cut once, not re-tried at every split.
_CARD = re.compile(r"(?<![\w-])\d{1,19}+(?:[ -]\d{1,19}+)*+(?![\w-])")
_CARD_LABEL = re.compile(
    r"\b(?:order|invoice|tracking|shipment|parcel|serial|imei|ref|reference|ticket)\b\D{0,12}$", re.IGNORECASE
)
_CARD_WORD = re.compile(
    r"(?<!gift )(?<!loyalty )\b(?:card|cc|credit|debit|visa|mastercard|amex|jcb|diners|maestro)\b", re.IGNORECASE
)
# (lowest prefix, highest prefix, allowed lengths): the issuer ranges of the major networks.
_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (1800, 1800, frozenset({15})),  # JCB, 15 digits
    (2131, 2131, frozenset({15})),
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (1, 1, frozenset({15})),  # UATP
    (5019, 5019, frozenset({16})),  # Dankort
    (5018, 5018, frozenset(range(13, 20))),  # Maestro
    (5020, 5020, frozenset(range(13, 20))),
    (5038, 5038, frozenset(range(13, 20))),
    (6304, 6304, frozenset(range(13, 20))),
    (6759, 6763, frozenset(range(13, 20))),
)
_MAX_GROUPS = 6
"""Most groups one card number is written in (``4111 1111 1111 1111 111`` has five)."""


def _is_card_number(digits: str, labelled: bool) -> bool:
    """A valid Luhn digit and a known issuer prefix with its length; any issuer after a card word."""
    if not 13 <= len(digits) <= 19 or not luhn.is_valid(digits):
        return False
    return labelled or any(
        low <= int(digits[: len(str(low))]) <= high and len(digits) in lengths for low, high, lengths in _ISSUERS
    )


def _card_windows(groups: list[re.Match[str]], labelled: bool) -> Iterator[tuple[int, int]]:
    """Card numbers among a run of digit groups, left to right, each the longest valid window at its start.

    A window is one group of 13–19 digits, or up to `_MAX_GROUPS` groups of 3–6 digits (the last may be
    shorter); the neighbours (an expiry, a CVV, a second card) are left out.
    """
    first = 0
    while first < len(groups):
        for last in range(min(len(groups), first + _MAX_GROUPS), first, -1):
            chosen = groups[first:last]
            sizes = [len(g.group()) for g in chosen]
            grouped = all(3 <= n <= 6 for n in sizes[:-1]) and 1 <= sizes[-1] <= 6 and len(chosen) > 1
            if (grouped or len(chosen) == 1) and _is_card_number("".join(g.group() for g in chosen), labelled):
                yield first, last
                first = last
                break
        else:
            first += 1


def find_payment_cards(text: str) -> Iterator[Span]:
    """Card numbers of 13–19 digits, written plain or grouped with spaces or dashes, that pass the Luhn check.

    A known issuer prefix with its length is needed, unless a card word ("card", "cc", "visa") comes right
    before. A run of groups may carry neighbours (a CVV after the number, a quantity before it, a second
    card), which are left out.
    """
    for match in _CARD.finditer(text):
        if _has_label(text, match.start(), _CARD_LABEL):
            continue
        labelled = _has_label(text, match.start(), _CARD_WORD, 30)
        groups = list(re.finditer(r"\d+", match.group()))
        for first, last in _card_windows(groups, labelled):
            yield match.start() + groups[first].start(), match.start() + groups[last - 1].end()


# --- IBAN ---------------------------------------------------------------------------------------------------

# Possessive: backtracking into the groups to find a boundary would try every split of a long token.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4}+){3,8}+", re.IGNORECASE)


_SEPARATOR = re.compile(r"[ -]")
_LAST_GROUP = re.compile(r"[ -][A-Za-z0-9]*$")


def find_ibans(text: str) -> Iterator[Span]:
    """IBANs, compact or in groups of four (spaces or dashes), any case.

    The country format and the mod-97 check digits must be valid.

    The pattern may swallow the words that follow ("… 0130 00 EUR"), so trailing groups are dropped until
    the rest validates, and the search goes on after the IBAN found, not after what the pattern swallowed.
    """
    position = 0
    while match := _IBAN.search(text, position):
        position = match.start() + 1
        candidate = match.group()
        if match.end() < len(text) and text[match.end()].isalnum():  # glued to more: cut back to a separator
            candidate = _LAST_GROUP.sub("", candidate) if _SEPARATOR.search(candidate) else ""
        while len(_SEPARATOR.sub("", candidate)) >= 15:
            if iban.is_valid(candidate):
                position = match.start() + len(candidate)
                yield match.start(), position
                break
            if not _SEPARATOR.search(candidate):
                break
            candidate = _LAST_GROUP.sub("", candidate)


# --- IP addresses ---------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d+)?(?![\w]|[./]\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[A-Za-z0-9]+)?(?:/\d+)?"
    r"(?![\w:]|\.\d)"
)
_VERSION_LABEL = re.compile(r"\b(?:version|ver|v|build|release|firmware|section|chapter|rule)\.?\s*$", re.I)


def _is_personal_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address can point at a host: not unspecified, loopback, or a netmask such as 255.255.255.0."""
    if address.is_unspecified or address.is_loopback:
        return False
    if isinstance(address, ipaddress.IPv4Address) and str(address).startswith("255."):
        inverted = ~int(address) & 0xFFFFFFFF
        return (inverted & (inverted + 1)) != 0  # contiguous ones then zeros: a netmask
    return True


def _ip_span(match: re.Match[str]) -> Span | None:
    """The address of `match` (with its prefix when the prefix is a valid length), if it is a personal one."""
    host, _, prefix = match.group().partition("/")
    address_text, zone, _ = host.partition("%")
    if ":" in address_text and sum(c in "0123456789abcdefABCDEF" for c in address_text) < 4:
        return None  # "a::b", "1::2": too little to be an address, and code looks like it
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        return None
    if not _is_personal_address(address):
        return None
    if prefix and not zone and int(prefix) <= address.max_prefixlen:
        return match.span()
    return match.start(), match.start() + len(address_text)  # an impossible prefix or a zone is not the address


def find_ip_addresses(text: str) -> Iterator[Span]:
    """Valid IPv4 and IPv6 addresses (with an optional ``/prefix`` or ``%zone``), public, private and link-local.

    Version strings ("v2.4.1.7", "1.2.3"), loopback, unspecified and netmask values are not addresses of
    anyone; private ranges are flagged because they map a customer's internal network. A prefix longer than
    the address allows is left out of the span ("10.0.0.7/123").
    """
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            span = _ip_span(match)
            if span and not _has_label(text, match.start(), _VERSION_LABEL, 12):
                yield span


DETECTORS: dict[PIIKind, Callable[[str], Iterator[Span]]] = {
    "secret": find_secrets,
    "email": find_emails,
    "payment_card": find_payment_cards,
    "iban": find_ibans,
    "us_ssn": find_us_ssns,
    "national_id": find_national_ids,
    "phone": find_phones,
    "ip_address": find_ip_addresses,
    "high_entropy": find_high_entropy,
}
"""Every detector by kind, most specific first: the order breaks ties between overlapping spans of one length."""
