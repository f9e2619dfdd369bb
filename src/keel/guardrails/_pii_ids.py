"""National identity numbers: US SSN and the ids of the major European countries, plus Canada's SIN.

Numbers with a distinctive shape (letters in fixed places, a check letter, a century sign) stand on their
own. Numbers that are only digits with a check digit (a Steuer-ID, a PESEL, an NHS number) are also what
order ids and phone numbers look like, so they count only after a context word naming them. Every
candidate must pass its own check: `python-stdnum`'s validator where it has one, the published algorithm
where it has none or an outdated one (Finland's 2023 century signs, Germany's post-2016 Steuer-ID rule, the
ICAO check digit of a German Personalausweis).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from stdnum.be import nn
from stdnum.ca import sin
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import ssn

from keel.guardrails._pii_labels import ID_LABEL, Span, has_label

__all__ = ["find_national_ids", "find_us_ssns"]

_SSN_DASHED = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_SSN_PLAIN = re.compile(r"(?<![\w.-])\d{3}[ .-]?\d{2}[ .-]?\d{4}(?![\w-]|\.\d)")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security|ss#|ss no)", re.IGNORECASE)


def find_us_ssns(text: str) -> Iterator[Span]:
    """US Social Security numbers: ``NNN-NN-NNNN`` anywhere, other spellings (spaces, dots) after "SSN" or similar.

    `stdnum.us.ssn` refuses numbers never issued: area 000, 666 or 9xx, group 00, serial 0000, and the few
    numbers published in advertising (078-05-1120).
    """
    dashed = set()
    for match in _SSN_DASHED.finditer(text):
        labelled_ssn = has_label(text, match.start(), _SSN_CONTEXT)  # "ss#" is not an id label
        if ssn.is_valid(match.group()) and (labelled_ssn or not has_label(text, match.start(), ID_LABEL)):
            dashed.add(match.span())
            yield match.span()
    for match in _SSN_PLAIN.finditer(text):
        if match.span() in dashed or not has_label(text, match.start(), _SSN_CONTEXT):
            continue
        if ssn.is_valid(re.sub(r"\D", "", match.group())):
            yield match.span()


# --- checks python-stdnum lacks or has outdated ---------------------------------------------------------------

_HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def _is_hetu(value: str) -> bool:
    """Finnish henkilötunnus, with the century signs of 2023 (``-YXWVU`` 1900s, ``ABCDEF`` 2000s)."""
    day, month = int(value[:2]), int(value[2:4])
    serial = int(value[7:10])
    return (
        1 <= day <= 31
        and 1 <= month <= 12
        and serial >= 2
        and _HETU_CHECK[int(value[:6] + value[7:10]) % 31] == value[10]
    )


def _is_steuer_id(digits: str) -> bool:
    """German Steueridentifikationsnummer: ISO 7064 MOD 11,10, no leading zero, no digit more than thrice."""
    if len(digits) != 11 or digits[0] == "0" or max(digits[:10].count(d) for d in set(digits[:10])) > 3:
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[10])


def _is_personalausweis(value: str) -> bool:
    """German identity card number: nine letters/digits (no vowels but I-less set) and an ICAO 7-3-1 check digit."""
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in value[:9]]
    return sum(v * (7, 3, 1)[i % 3] for i, v in enumerate(values)) % 10 == int(value[9])


def _digits(check: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda value: check(re.sub(r"[\s.-]", "", value))


# --- the ids ---------------------------------------------------------------------------------------------------

# (pattern, check, context): a context of None means the shape alone is enough.
_B = r"(?<![\w-])"
_E = r"(?![\w-])"
_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool], re.Pattern[str] | None], ...] = (
    (re.compile(_B + r"\d{8}-?[A-Za-z]" + _E), lambda v: dni.is_valid(v.upper()), None),  # ES DNI
    (re.compile(_B + r"[XYZxyz]-?\d{7}-?[A-Za-z]" + _E), lambda v: nie.is_valid(v.upper()), None),  # ES NIE
    (
        re.compile(
            r"(?<![A-Za-z0-9])[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"
            r"(?![A-Za-z0-9])"
        ),
        codicefiscale.is_valid,
        None,
    ),  # IT codice fiscale
    # UK NINO, any case and spacing; HMRC never issues D F I Q U V first, D F I O Q U V second, nor a few pairs.
    (
        re.compile(
            r"(?<![A-Za-z0-9])(?!(?i:BG|GB|KN|NK|NT|TN|ZZ))[A-CEGHJ-PR-TW-Za-ceghj-pr-tw-z][A-CEGHJ-NPR-TW-Za-ceghj-npr-tw-z]"
            r" ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d](?![A-Za-z0-9])"
        ),
        lambda v: True,
        None,
    ),
    (re.compile(_B + r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]" + _E), _is_hetu, None),  # FI henkilötunnus
    (re.compile(_B + r"(?:\d{2})?\d{6}[-+]\d{4}" + _E), personnummer.is_valid, None),  # SE, with its separator
    (re.compile(_B + r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}" + _E), nn.is_valid, None),  # BE, dotted
    (re.compile(_B + r"[12] \d{2} \d{2} \d{2} \d{3} \d{3} \d{2}" + _E), _digits(nir.is_valid), None),  # FR, spaced
    (
        re.compile(_B + r"\d{12}" + _E),
        personnummer.is_valid,
        re.compile(r"personnummer|\bpnr\b|personal identity", re.I),
    ),
    (re.compile(_B + r"\d{10}" + _E), personnummer.is_valid, re.compile(r"personnummer|\bpnr\b", re.I)),
    (re.compile(_B + r"\d{11}" + _E), _is_steuer_id, re.compile(r"steuer|\bidnr|identifikationsnummer", re.I)),
    (re.compile(_B + r"[CFGHJKLMNPRTVWXYZ0-9]{9}\d" + _E), _is_personalausweis, re.compile(r"ausweis", re.I)),
    (re.compile(_B + r"\d{11}" + _E), pesel.is_valid, re.compile(r"\bpesel\b", re.I)),
    (re.compile(_B + r"\d{11}" + _E), nn.is_valid, re.compile(r"rijksregister|numéro national|national number", re.I)),
    (
        re.compile(_B + r"[12]\d{12}\s?\d{2}" + _E),
        _digits(nir.is_valid),
        re.compile(r"\bnir\b|sécurité sociale|securite sociale|\binsee\b|numéro de sécu", re.I),
    ),
    (re.compile(_B + r"\d{3}[ -]?\d{3}[ -]?\d{4}" + _E), _digits(nhs.is_valid), re.compile(r"\bnhs\b", re.I)),
    (
        re.compile(r"(?<![\w.-])\d{3}[ .-]?\d{3}[ .-]?\d{3}(?![\w-]|\.\d)"),
        _digits(bsn.is_valid),
        re.compile(r"\b(?:bsn|burgerservicenummer|citizen service number|sofinummer)\b", re.I),
    ),
    (
        re.compile(r"(?<![\w.-])\d{3}[ .-]?\d{3}[ .-]?\d{3}(?![\w-]|\.\d)"),
        _digits(sin.is_valid),
        re.compile(r"\bSIN\b|\bsocial insurance\b", re.I),
    ),
)
_NINO_CONTEXT = re.compile(r"\b(?:national insurance|nino|ni number|ni no)\b", re.IGNORECASE)


def find_national_ids(text: str) -> Iterator[Span]:
    """Non-US national identity numbers (ES, IT, UK, FI, SE, BE, FR, DE, PL, NL, CA) that pass their checks.

    Alone: Spanish DNI/NIE, Italian codice fiscale, UK NINO, Finnish henkilötunnus, Swedish personnummer with
    its dash, the dotted Belgian national number and the spaced French NIR. After a context word: the compact
    Swedish, Belgian and French forms, the German Steuer-ID and Personalausweis, the Polish PESEL, the UK NHS
    number, the Dutch BSN and the Canadian SIN.
    """
    for pattern, check, context in _IDS:
        for match in pattern.finditer(text):
            if context is not None and not has_label(text, match.start(), context):
                continue
            if context is None and has_label(text, match.start(), ID_LABEL):
                continue  # "Serial JG103759A": a shape alone does not outweigh a label saying what it is
            if check(match.group()):
                yield match.span()
