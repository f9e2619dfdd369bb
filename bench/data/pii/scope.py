"""Keel's documented PII scope (docs/guardrails.md, "PIIGuard: what it detects"), as a test on a labelled item.

Written from the documentation before the detectors were changed, and frozen with the data: an item outside
the scope (a phone number in another country's national format, a bare 11-digit number nobody called a tax
id, a vendor key with no distinctive prefix) still counts in the raw figures; the "in scope" figures leave it
out. The checks use the same validating libraries the documentation names (`phonenumbers`, `python-stdnum`),
because "valid in its numbering plan" and "passes its check digit" are part of what is documented.
"""

from __future__ import annotations

import ipaddress
import re

import phonenumbers
from stdnum import luhn

# Documented vendor formats: a distinctive prefix (or shape) that says which provider issued the key.
VENDOR_FORMATS = re.compile(
    "|".join(
        (
            r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",  # AWS
            r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{22,}",  # GitHub
            r"gl(?:pat|dt|rt|ptt|soat|oas|cbt|ffct|ft|imt|agent|rtr)-[\w-]{20,}|GR1348941[\w-]{20,}",  # GitLab
            r"xox[abposre]-[\w-]{10,}|xoxe\.xox[bp]-[\w-]+|xapp-[\w-]+|hooks\.slack\.com/(?:services|workflows)/",
            r"[sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,}",  # Stripe
            r"sk-ant-[\w-]{20,}|sk-(?:proj-|svcacct-|admin-)?[\w-]{20,}",  # Anthropic, OpenAI
            r"AIza[\w-]{35}",  # Google
            r"hf_[A-Za-z]{30,}|api_org_[A-Za-z]{30,}",  # Hugging Face
            r"npm_[A-Za-z0-9]{36}|pypi-AgE[\w-]{50,}|rubygems_[a-f0-9]{48}",  # registries
            r"SG\.[\w-]{16,}\.[\w-]{16,}",  # SendGrid
            r"(?:SK|AC)[0-9a-fA-F]{32}",  # Twilio
            r"[0-9a-f]{32}-us\d{1,2}",  # Mailchimp
            r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",  # Shopify
            r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
            r"dapi[a-f0-9]{32}",  # Databricks
            r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",  # Doppler
            r"glc_[A-Za-z0-9+/]{32,}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",  # Grafana
            r"hv[sb]\.[\w-]{24,}|[A-Za-z0-9]{14}\.atlasv1\.[\w=-]{60,}",  # HashiCorp Vault, Terraform
            r"ops_eyJ[A-Za-z0-9+/]{40,}|A3-[A-Z0-9]{6}-",  # 1Password
            r"ntn_\d{11}[A-Za-z0-9]{35}|lin_api_[A-Za-z0-9]{40}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}",  # Notion, Linear, Postman  # noqa: E501
            r"pul-[a-f0-9]{40}|sntr[ysu]_[\w=+/]{40,}|AGE-SECRET-KEY-1[0-9A-Z]{58}|HRKU-[\w-]{30,}",
            r"fo1_[\w-]{43}|fm[12][ar]?_[A-Za-z0-9+/=]{50,}",  # Fly.io
            r"pplx-[A-Za-z0-9]{48}|pnu_[A-Za-z0-9]{36}|rdme_[a-z0-9]{70}|ico-[A-Za-z0-9]{32}",
            r"sgp_[A-Za-z0-9_]{40,}|s-s4t2(?:ud|af)-[a-f0-9]{64}|sq0(?:atp|csp)-[\w-]{22,}|EAAA[\w-]{60}",  # 42, Square
            r"AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59}|ATATT3[\w=-]{100,}|dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}",
            r"\d{8,10}:AA[\w-]{33}",  # Telegram bot
            r"[\w~.-]{3}\dQ~[\w~.-]{31,34}",  # Azure AD client secret
            r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.?[\w-]*",  # JWT
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY",
        )
    )
)
# Documented contexts that make any non-placeholder value a secret.
SECRET_CONTEXT = re.compile(
    r"(?:\bBearer\s+|://[^\s:/@]*:?$|(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|client[_-]?secret|credentials?)[\"']?\s*(?:[:=]|:=|=>)\s*[\"'`]?)$",
    re.IGNORECASE,
)
URL_CREDENTIALS = re.compile(r"://[^\s:/@]+:[^\s/@]+@")
PHONE_LABEL = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|call|text|sms|whatsapp|fax|number|reach|ring|dial)\b\D{0,15}$", re.I
)
# After a phone label, any number written like one counts, valid in a numbering plan or not.
PHONE_SHAPE = re.compile(r"\+?\(?\d[\d ().-]{5,20}\d")
CARD_LABEL = re.compile(r"\b(?:card|cc|credit|debit|visa|mastercard|amex)\b", re.I)
# National ids that are bare digits need one of these words in the 40 characters before them.
ID_CONTEXT: dict[str, re.Pattern[str]] = {
    "DE_TAX_ID": re.compile(r"steuer|idnr|identifikationsnummer|tax id|tin\b", re.I),
    "DE_ID_CARD": re.compile(r"ausweis|id card|identity card|dokument", re.I),
    "PL_PESEL": re.compile(r"pesel", re.I),
    "UK_NHS": re.compile(r"\bnhs\b", re.I),
    "CA_SIN": re.compile(r"\bsin\b|social insurance", re.I),
    "SE_PERSONNUMMER": re.compile(r"personnummer|\bpnr\b|personal identity", re.I),
    "US_SSN": re.compile(r"\bssn\b|social security|ss#", re.I),
}
# Card issuers: (lowest prefix, highest prefix, allowed lengths), as documented.
ISSUERS = (
    (4, 4, (13, 16, 19)),
    (51, 55, (16,)),
    (2221, 2720, (16,)),
    (34, 34, (15,)),
    (37, 37, (15,)),
    (6011, 6011, range(16, 20)),
    (644, 649, range(16, 20)),
    (65, 65, range(16, 20)),
    (300, 305, range(14, 20)),
    (36, 36, range(14, 20)),
    (38, 39, range(14, 20)),
    (3528, 3589, range(15, 20)),
    (2131, 2131, (15,)),
    (1800, 1800, (15,)),
    (62, 62, range(16, 20)),
    (1, 1, (15,)),
    (5019, 5019, (16,)),
    (50, 50, range(12, 20)),
    (56, 58, range(12, 20)),
    (6304, 6304, range(12, 20)),
    (67, 67, range(12, 20)),
)


def _before(text: str, start: int, window: int = 40) -> str:
    return text[max(0, start - window) : start]


def _card(value: str, text: str, start: int) -> str | None:
    digits = re.sub(r"\D", "", value)
    if not (13 <= len(digits) <= 19 and luhn.is_valid(digits)):
        return "not a Luhn-valid number of 13-19 digits"
    issued = any(
        low <= int(digits[: len(str(low))]) <= high and len(digits) in lengths for low, high, lengths in ISSUERS
    )
    return None if issued or CARD_LABEL.search(_before(text, start, 30)) else "unknown issuer and no card word"


def _phone(value: str, text: str, start: int) -> str | None:
    digits = sum(c.isdigit() for c in value)
    if PHONE_LABEL.search(_before(text, start)) and PHONE_SHAPE.fullmatch(value) and 7 <= digits <= 15:
        return None
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return "not a phone number libphonenumber parses"
    if not phonenumbers.is_valid_number(number):
        return "not valid in its numbering plan (national formats: US only by default)"
    if value.startswith("+") or not value.isdigit():
        return None
    return "bare digits with no phone label"


def _ip(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value.split("/", 1)[0].strip("[]"))
    except ValueError:
        return "not an IP address"
    if address.is_loopback or address.is_unspecified:
        return "loopback or unspecified"
    if isinstance(address, ipaddress.IPv4Address) and str(address).startswith("255."):
        inverted = ~int(address) & 0xFFFFFFFF
        if inverted & (inverted + 1) == 0:
            return "a netmask (documented as not an address)"
    return None


def out_of_scope(kind: str, entity: str, text: str, start: int, end: int) -> str | None:
    """Why the labelled `text[start:end]` of `kind` is outside the documented scope; None when inside."""
    value = text[start:end]
    match kind:
        case "email" | "iban":
            return None
        case "payment_card":
            return _card(value, text, start)
        case "phone":
            return _phone(value, text, start)
        case "ip_address":
            return _ip(value)
        case "us_ssn":
            shaped = re.fullmatch(r"\d{3}-\d{2}-\d{4}", value)
            return None if shaped or ID_CONTEXT["US_SSN"].search(_before(text, start)) else "not dashed, no context"
        case "national_id":
            context = ID_CONTEXT.get(entity)
            if entity == "SE_PERSONNUMMER" and re.search(r"[-+]", value):
                return None
            if context is None or context.search(_before(text, start)):
                return None
            return "bare digits with no context word"
        case "secret":
            if VENDOR_FORMATS.search(value) or URL_CREDENTIALS.search(value):
                return None
            if SECRET_CONTEXT.search(_before(text, start, 60)):
                return None
            return "no documented vendor prefix or context"
    return f"kind {kind!r} not documented"
