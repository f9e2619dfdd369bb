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
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Literal

import phonenumbers
from stdnum import iban, luhn
from stdnum.ca import sin
from stdnum.es import dni, nie
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

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

Span = tuple[int, int]
"""Start and end offsets of one detected value."""

# A label right before a number that makes it an identifier, not a phone or card number.
_ID_LABEL = re.compile(
    r"(?:\b(?:order|invoice|ref|reference|tracking|shipment|parcel|ticket|case|sku|serial|confirmation|"
    r"booking|timestamp|imei|po|id|rma)\b\s*(?:number|num|no\.?|id)?\s*[:#]?\s*|#\s*)$",
    re.IGNORECASE,
)


def _has_label(text: str, start: int, label: re.Pattern[str], window: int = 40) -> bool:
    """Whether `label` occurs in the `window` characters before `start` (right before, if anchored by ``$``)."""
    return label.search(text, max(0, start - window), start) is not None


# --- email ---------------------------------------------------------------------------------------------------

# Letters and digits in any script (\w without "_"), so "josé@ejemplo.es" and IDN domains count. An apostrophe may
# be inside the local part (o'brien@…) but also just before the address: Python shows strings in single quotes.
_EMAIL = re.compile(r"(?<![\w.%+-])[^\W_][\w.%+'-]{0,63}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])")
# "user:password@host" inside a URL is a credential (see `_URL_CREDENTIALS`), not an address.
_IN_URL_AUTHORITY = re.compile(r"://[^\s/@]*$")


def find_emails(text: str) -> Iterator[Span]:
    """Email addresses; the domain needs a dot and a letter TLD, so ``root@localhost`` is not one."""
    for match in _EMAIL.finditer(text):
        if not _IN_URL_AUTHORITY.search(text, max(0, match.start() - 200), match.start()):
            yield match.span()


# --- phone ---------------------------------------------------------------------------------------------------


def find_phones(text: str, region: str = "US") -> Iterator[Span]:
    """Numbers valid in `region`'s national format, or anywhere in international ``+CC`` format.

    ``Leniency.VALID`` checks each number against the numbering plan of its country and refuses matches glued
    to letters, so ids such as ``A-1002`` and tracking numbers such as ``JD0146…`` do not match; dates and
    amounts are refused by the matcher itself.
    """
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        if _has_label(text, match.start, _ID_LABEL):
            continue
        if match.raw_string.isdigit() and not _has_label(text, match.start, _PHONE_LABEL):
            continue  # a bare run of digits is an id or a number ("2025000123", "RF-2025-000123") unless called a phone
        if match.start > 0 and text[match.start - 1] == "-" and match.start > 1 and text[match.start - 2].isalnum():
            continue  # glued to an id's prefix: "A-2125550123"
        yield match.start, match.end


_PHONE_LABEL = re.compile(
    r"(?:phone|tel|telephone|mobile|cell|call|text|sms|whatsapp|fax|number|reach)\D{0,12}$", re.IGNORECASE
)


# --- payment card -------------------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w-])(?:\d{13,19}|\d{1,7}(?:[ -]\d{1,7}){1,6})(?![\w-])")
_CARD_LABEL = re.compile(
    r"\b(?:order|invoice|tracking|shipment|parcel|serial|imei|ref|reference|ticket)\b\D{0,12}$", re.IGNORECASE
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
    (38, 39, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (5018, 5018, frozenset(range(13, 20))),  # Maestro
    (5020, 5020, frozenset(range(13, 20))),
    (5038, 5038, frozenset(range(13, 20))),
    (6304, 6304, frozenset(range(13, 20))),
    (6759, 6763, frozenset(range(13, 20))),
)


def _is_card_number(digits: str) -> bool:
    """A known issuer prefix with its length, and a valid Luhn digit."""
    if not 13 <= len(digits) <= 19:
        return False
    issued = any(
        low <= int(digits[: len(str(low))]) <= high and len(digits) in lengths for low, high, lengths in _ISSUERS
    )
    return issued and luhn.is_valid(digits)


def find_payment_cards(text: str) -> Iterator[Span]:
    """Card numbers of 13–19 digits, written plain or grouped with spaces or dashes.

    A run of groups may carry a neighbour (a CVV after the number, a quantity before it), so one group may be
    dropped from either end when the whole run is not a card number.
    """
    for match in _CARD.finditer(text):
        if _has_label(text, match.start(), _CARD_LABEL):
            continue
        groups = list(re.finditer(r"\d+", match.group()))
        windows = [(0, len(groups)), (0, len(groups) - 1), (1, len(groups)), (1, len(groups) - 1)]
        for first, last in windows:
            if first >= last:
                continue
            chosen = groups[first:last]
            if _is_card_number("".join(g.group() for g in chosen)):
                yield match.start() + chosen[0].start(), match.start() + chosen[-1].end()
                break


# --- IBAN ---------------------------------------------------------------------------------------------------

# Possessive: backtracking into the groups to find a boundary would try every split of a long token.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}+){3,8}+", re.IGNORECASE)


def find_ibans(text: str) -> Iterator[Span]:
    """IBANs, compact or in groups of four, any case, whose country format and mod-97 check digits are valid.

    The pattern may swallow the words that follow ("… 0130 00 EUR"), so trailing groups are dropped until
    the rest validates, and the search goes on after the IBAN found, not after what the pattern swallowed.
    """
    position = 0
    while match := _IBAN.search(text, position):
        position = match.start() + 1
        candidate = match.group()
        if match.end() < len(text) and text[match.end()].isalnum():  # glued to more: cut back to a space
            candidate = candidate.rsplit(" ", 1)[0] if " " in candidate else ""
        while len(candidate.replace(" ", "")) >= 15:
            if iban.is_valid(candidate):
                position = match.start() + len(candidate)
                yield match.start(), position
                break
            if " " not in candidate:
                break
            candidate = candidate.rsplit(" ", 1)[0]


# --- national identifiers ------------------------------------------------------------------------------------

_SSN_DASHED = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_SSN_PLAIN = re.compile(r"(?<![\w-])\d{3} ?\d{2} ?\d{4}(?![\w-])")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security|ss#|ss no)", re.IGNORECASE)


def find_us_ssns(text: str) -> Iterator[Span]:
    """US Social Security numbers: ``NNN-NN-NNNN`` anywhere, other spellings only after "SSN" or similar.

    `stdnum.us.ssn` refuses numbers never issued: area 000, 666 or 9xx, group 00, serial 0000, and the few
    numbers published in advertising (078-05-1120).
    """
    for match in _SSN_DASHED.finditer(text):
        labelled_ssn = _has_label(text, match.start(), _SSN_CONTEXT)  # "ss#" is not an id label
        if ssn.is_valid(match.group()) and (labelled_ssn or not _has_label(text, match.start(), _ID_LABEL)):
            yield match.span()
    for match in _SSN_PLAIN.finditer(text):
        if _has_label(text, match.start(), _SSN_CONTEXT) and ssn.is_valid(match.group().replace(" ", "")):
            yield match.span()


_DNI = re.compile(r"(?<![\w-])\d{8}-?[A-Za-z](?![\w-])")
_NIE = re.compile(r"(?<![\w-])[XYZxyz]-?\d{7}-?[A-Za-z](?![\w-])")
_CODICE_FISCALE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"
    r"(?![A-Za-z0-9])"
)
# HMRC's rules: first letter not D F I Q U V, second not D F I O Q U V, and a few prefixes never issued.
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"(?P<sep> ?)\d{2}(?P=sep)\d{2}(?P=sep)\d{2}(?P=sep)[A-D](?![A-Za-z0-9])"
)
_NINO_CONTEXT = re.compile(r"\b(?:national insurance|nino|ni number|ni no)\b", re.IGNORECASE)
_NINE_DIGITS = re.compile(r"(?<![\w.-])\d{3}[ .-]?\d{3}[ .-]?\d{3}(?![\w-]|\.\d)")
_BSN_CONTEXT = re.compile(r"\b(?:bsn|burgerservicenummer|citizen service number|sofinummer)\b", re.IGNORECASE)
_SIN_CONTEXT = re.compile(r"(?:\bSIN\b|\bsocial insurance\b)", re.IGNORECASE)


def find_national_ids(text: str) -> Iterator[Span]:
    """Non-US national identity numbers with a validator in `python-stdnum` and a recognizable shape.

    Spanish DNI/NIE (check letter) and Italian codice fiscale (check letter) stand on their own. A UK
    National Insurance number has no check digit: the spaced form ``AB 12 34 56 C`` is distinctive enough,
    the compact form needs a context word. Dutch BSN and Canadian SIN are bare 9-digit numbers with weak
    checks (11-proof, Luhn), so they count only after "BSN" / "SIN" or similar.
    """
    for match in _DNI.finditer(text):
        if dni.is_valid(match.group().upper()):
            yield match.span()
    for match in _NIE.finditer(text):
        if nie.is_valid(match.group().upper()):
            yield match.span()
    for match in _CODICE_FISCALE.finditer(text):
        if codicefiscale.is_valid(match.group()):
            yield match.span()
    for match in _NINO.finditer(text):
        if match.group("sep") or _has_label(text, match.start(), _NINO_CONTEXT):
            yield match.span()
    for match in _NINE_DIGITS.finditer(text):
        if _has_label(text, match.start(), _BSN_CONTEXT) and bsn.is_valid(match.group()):
            yield match.span()
        elif _has_label(text, match.start(), _SIN_CONTEXT) and sin.is_valid(match.group().replace(".", "")):
            yield match.span()


# --- IP addresses ---------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?![\w]|[./]\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:/\d{1,3})?(?![\w:]|\.\d)"
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


def find_ip_addresses(text: str) -> Iterator[Span]:
    """Valid IPv4 and IPv6 addresses (with an optional ``/prefix``), public and private alike.

    Version strings ("v2.4.1.7", "1.2.3"), loopback, unspecified and netmask values are not addresses of
    anyone; private ranges are flagged because they map a customer's internal network.
    """
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            host = match.group().split("/", 1)[0]
            if pattern is _IPV6 and sum(2 if "." in part else 1 for part in host.split(":") if part) < 3:
                continue  # "fe80::1", "a::b": too little to be a routable address, and code looks like it
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                continue
            if _is_personal_address(address) and not _has_label(text, match.start(), _VERSION_LABEL, 12):
                yield match.span()


# --- secrets --------------------------------------------------------------------------------------------------

# No leading \b: it would keep `re` from skipping ahead to the first letters; the boundary is checked in code.
_SECRETS = re.compile(
    "|".join(
        (
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"|(?:\s+[A-Za-z0-9+/=]{16,})+)",  # a key cut off before its END line: its base64 lines
            r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
            r"whsec_[0-9A-Za-z]{24,}",
            r"(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r"gh[pousr]_[A-Za-z0-9]{36,}\b",
            r"github_pat_[A-Za-z0-9_]{22,}",
            r"glpat-[A-Za-z0-9_-]{20,}",
            r"xox[baprs]-[A-Za-z0-9-]{10,}",
            r"AIza[0-9A-Za-z_-]{35}",
            r"npm_[A-Za-z0-9]{36}\b",
            r"hf_[A-Za-z0-9]{34,}\b",
            r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
            r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        )
    )
)
_BEARER = re.compile(r"\bBearer\s+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)")
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]{0,30}://(?P<value>[^\s:/@]+:[^\s/@]+)@")
_ASSIGNED = re.compile(
    r"\b(?:password|passwd|pwd|passphrase|secret|api[_ -]?key|access[_ -]?key|secret[_ -]?key|auth[_ -]?token|"
    r"access[_ -]?token|client[_ -]?secret)\b[\"']?(?:\s*[:=]\s*|\s+is\s+)[\"']?(?P<value>[^\s\"',;]{6,})",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"^(?:[*•<\[{%]|x{3,}|\.{3}|\$\{)", re.IGNORECASE)


def find_secrets(text: str) -> Iterator[Span]:
    """Credentials by shape: vendor key prefixes, private key blocks, JWTs, bearer tokens, URL passwords.

    A value assigned to a name such as ``password`` or ``api_key`` counts when it has a digit or a symbol (so
    "password: reset" does not) and is not a placeholder (``***``, ``<your key>``, ``${TOKEN}``).
    """
    for match in _SECRETS.finditer(text):
        if match.start() == 0 or not (text[match.start() - 1].isalnum() or text[match.start() - 1] == "_"):
            yield match.span()
    for pattern in (_BEARER, _URL_CREDENTIALS):
        for match in pattern.finditer(text):
            yield match.span("value")
    for match in _ASSIGNED.finditer(text):
        value = match.group("value").rstrip(".")
        if _PLACEHOLDER.match(value) or value.isalpha():
            continue
        yield match.start("value"), match.start("value") + len(value)


# --- high-entropy strings ------------------------------------------------------------------------------------

_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/_=-])")
_HEX = re.compile(r"^[0-9a-fA-F-]+$")
_OBJECT_ID = re.compile(r"^[a-z]{2,6}_[A-Za-z0-9]{8,}$")
# Base64 of a PNG, JPEG, GIF, PDF or ZIP file: content, not a credential.
_FILE_BASE64 = re.compile(r"^(?:iVBORw0KGgo|/9j/|R0lGOD|JVBERi0|UEsDB)")
_WORD = re.compile(r"[A-Z]?[a-z]{2,}")
_ENTROPY_ID_LABEL = re.compile(
    r"\b(?:order|tracking|ref|reference|request|trace|span|correlation|commit|sha|hash|checksum|uuid|id)\b"
    r"\s*(?:id|number|no\.?)?\s*[:#=]?\s*$",
    re.IGNORECASE,
)
ENTROPY_BITS_PER_CHAR = 3.5
"""Shannon entropy a run must reach; random base62/base64 of 24+ characters sits near 4.2, prose near 3."""
CLASS_SWITCH_RATIO = 0.35
"""Share of neighbouring letters and digits of different classes (upper, lower, digit) a run must reach.
Random base62/base64 switches 0.62 of the time on average (fewer than 0.5% of 24-character strings fall
below 0.35); camelCase, snake_case and kebab-case identifiers built from words stay at or below 0.33."""
WORDY_SHARE = 0.7
"""Share of a run inside word-like segments (``Word``, ``word``) at which it reads as words when letters are
also at least 25% vowels: true of 99.97% of identifiers made of English words, of 0.23% of random base62."""


def _char_class(char: str) -> int:
    return 0 if char.isupper() else 1 if char.islower() else 2


def _looks_like_words(run: str) -> bool:
    """Mostly word-like segments with a vowel share of prose: ``ThisIsAVeryLongName2``, not ``Xk9mQ2pLr7``."""
    letters = [c for c in run if c.isalpha()]
    vowels = sum(c in "aeiouAEIOU" for c in letters)
    in_words = sum(len(word) for word in _WORD.findall(run))
    return in_words >= WORDY_SHARE * len(run) and vowels >= 0.25 * len(letters)


def _looks_random(run: str) -> bool:
    """Mixed classes, high entropy and frequent class switches: what generated secrets have and words lack."""
    has_upper = any(c.isupper() for c in run)
    has_lower = any(c.islower() for c in run)
    if not any(c.isdigit() for c in run) or not (has_upper or has_lower):
        return False
    if not (has_upper and has_lower) and len(run) < 32:
        return False
    counts = Counter(run)
    entropy = -sum(n / len(run) * math.log2(n / len(run)) for n in counts.values())
    # Separators do not count: "how-to-reset-2024" switches at every dash but is words.
    chars = [c for c in run if c.isalnum()]
    switches = sum(_char_class(a) != _char_class(b) for a, b in zip(chars, chars[1:], strict=False))
    if entropy < ENTROPY_BITS_PER_CHAR or switches / (len(chars) - 1) < CLASS_SWITCH_RATIO:
        return False
    return not _looks_like_words(run)


def find_high_entropy(text: str) -> Iterator[Span]:
    """Runs of 24+ base64/base62 characters that look generated: likely secrets of a vendor we do not know.

    Hex-only runs (git SHAs, checksums, UUIDs), ``prefix_…`` object ids (``cus_…``, ``pi_…``) and base64 of
    common file formats are left alone, as are runs labelled as an id ("request id", "commit", "tracking").
    """
    for match in _RUN.finditer(text):
        run = match.group().rstrip("=")
        if _HEX.match(run) or _OBJECT_ID.match(run) or _FILE_BASE64.match(run):
            continue
        if _has_label(text, match.start(), _ENTROPY_ID_LABEL):
            continue
        if _looks_random(run):
            yield match.span()


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
