"""Secret detectors: vendor keys by prefix, credentials by context, and generated-looking strings.

Vendor keys are found in two steps so the cost stays linear in the text: one pass cuts the text into
key-like tokens, then each token is held against the vendor formats, anchored at its start. A token whose
body is a placeholder (``ghp_xxxx…``, ``glc_1111…``, AWS's ``…EXAMPLE`` keys) is not a secret.

Where only the context says "secret" (an assignment, a bearer header, a generated-looking run), a value that a
person typed in place of a key (`is_stand_in`) or that says where the key is kept (code, a file path) is not one.
A run counting up ("123456", "abcdef") marks a typed value only where nothing names it a secret (`find_high_entropy`).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Iterator

from keel.guardrails._pii_labels import Span, has_label

__all__ = ["find_high_entropy", "find_secrets"]

# Each format matches a whole token. The prefix says which provider issued the key.
_VENDOR = re.compile(
    "|".join(
        (
            r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",  # AWS
            r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,}",  # GitHub
            r"gl(?:pat|dt|rt|ptt|soat|oas|cbt|ffct|ft|imt|agent|rtr)-[\w-]{20,}(?:\.[\w]{9})?",  # GitLab
            r"GR1348941[\w-]{20,}",  # GitLab runner registration
            r"xox[abposr]-(?:\d+-){1,4}[A-Za-z0-9-]{8,}",  # Slack
            r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{60,}|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{20,}",
            r"[sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{24,}",  # Stripe
            r"sk-ant-(?:api|admin)\d\d-[\w-]{20,}",  # Anthropic
            r"sk-(?:proj-|svcacct-|admin-)?[\w-]{20,}",  # OpenAI (random-looking body checked in code)
            r"AIza[\w-]{35}",  # Google
            r"hf_[A-Za-z0-9]{34}|api_org_[A-Za-z]{34}",  # Hugging Face
            r"npm_[A-Za-z0-9]{36}|pypi-AgE[\w-]{50,}|rubygems_[a-f0-9]{48}",  # package registries
            r"SG\.[\w=-]{16,}\.[\w=-]{16,}|SG\.[\w=-]{66}",  # SendGrid
            r"(?:SK|AC)[0-9a-fA-F]{32}",  # Twilio
            r"[0-9a-f]{32}-us\d{1,2}",  # Mailchimp
            r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",  # Shopify
            r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
            r"dapi[a-f0-9]{32}(?:-\d)?",  # Databricks
            r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",  # Doppler
            r"glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",  # Grafana
            r"hv[sb]\.[\w-]{24,}|[A-Za-z0-9]{14}\.atlasv1\.[\w=-]{60,}",  # Vault, Terraform Cloud
            r"ops_eyJ[A-Za-z0-9+/]{40,}={0,2}|A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})(?:-[A-Z0-9]{5}){3}",
            r"ntn_\d{11}[A-Za-z0-9]{35}|lin_api_[A-Za-z0-9]{40}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
            r"pul-[a-f0-9]{40}|sntr[ysu]_[\w=+/]{40,}|AGE-SECRET-KEY-1[0-9A-Z]{58}|HRKU-[\w-]{30,}",
            r"fo1_[\w-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{50,}={0,2}",  # Fly.io
            r"pplx-[A-Za-z0-9]{48}|pnu_[A-Za-z0-9]{36}|rdme_[a-z0-9]{70}|ico-[A-Za-z0-9]{32}",
            r"sgp_(?:local_)?[A-Za-z0-9_]{40,}|s-s4t2(?:ud|af)-[a-f0-9]{64}",  # Sourcegraph, 42
            r"sq0(?:atp|csp)-[\w-]{22,}|EAAA[\w-]{60}",  # Square
            r"AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59}|ATATT3[\w=-]{100,}",  # JFrog, Atlassian
            r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}",  # Dynatrace
            r"[\w~.-]{3}\dQ~[\w~.-]{31,34}",  # Azure AD client secret
            r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.?[\w-]*",  # JWT
        )
    )
)
_TOKEN = re.compile(r"(?<![\w.~+/=-])[\w][\w.~+/=-]{11,}")
_NAME_PREFIX = re.compile(r"[A-Za-z_][\w.-]{0,40}=(?=[^=])")
_BODY = re.compile(r"^(?:[a-z]+[_-]|[A-Z0-9]{2,5}[_.-]|sk-(?:ant-)?)")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,8000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
    r"(?: BLOCK)?-----|(?:\s+[A-Za-z0-9+/=]{16,})+)"
)
_SLACK_WEBHOOK = re.compile(r"https?://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/]{20,}")
_TELEGRAM = re.compile(r"(?<![\w:])\d{8,10}:AA[\w-]{33}(?![\w-])")
# RFC 6750's own example token is 15 characters ("mF_9.B5f-4.1JqM"): ten rule out "Bearer auth" and the like.
_BEARER = re.compile(r"\b(?:Bearer\s+|Authorization:\s*Basic\s+)(?P<value>[A-Za-z0-9._~+/-]{10,}=*)")
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]{0,30}://(?P<value>[^\s:/@'\";]+:[^\s/@'\";]+)@")
# A name ending in one of these words (``ETSY_API_KEY``, ``oktaApiToken``, ``"client_secret":``) then an operator.
# A quoted value without blanks runs to its closing quote: a generated secret may hold quotes, ";" or ",".
_ASSIGNED = re.compile(
    r"(?:password|passwd|pwd|passphrase|secret|token|api[_ -]?key|apikey|access[_ -]?key|private[_ -]?key|"
    r"credentials?)(?![A-Za-z0-9_])[\"']?(?:\s*(?::=|=>|\?=|[:=])\s*|\s+is\s+)"
    r"(?:\"(?P<double>[^\"\s]{6,200})\"|'(?P<single>[^'\s]{6,200})'|[\"'`]?(?P<value>[^\s\"'`,;]{6,}))",
    re.IGNORECASE,
)
# A template or variable where the value goes: "${…}", "{{…}}", "<…>", "%s", Ruby's "#{…}", an escaped "\\$_POST".
_PLACEHOLDER = re.compile(r"^\\?(?:[*•<\[{%$]|#\{|x{3,})|\.{3}|…|x{4,}|X{4,}|EXAMPLE", re.IGNORECASE)
# Words, or a CSS selector made of words ("#add-password", ".reset-password"): a name, not a value.
_WORDS = re.compile(r"^[#.]?[A-Za-z]+(?:[_-][A-Za-z]+)*$")
# A line of configuration that sets a password (INI, .env, an ODBC connection string): the key starts a line or
# follows ";", "=" sets it, and the value ends the line or the pair. There a value of words ("Pwd=myPassword;",
# "Password=thisismypassword") is the password someone chose; in code the same words are a variable's name.
_CONFIG_PASSWORD_NAME = re.compile(r"pass|pwd", re.IGNORECASE)
_CONFIG_VALUE_END = re.compile(r"[\"']?[ \t]*(?:[\r\n;#]|\Z)")
_CONFIG_KEY_LIMIT = 60
# Words that ask for a value ("insert_your_password_here", "enter-password", "YourPassword") rather than give one:
# whole words only, split at separators and at camel case, so "Carpenter" or "ThereIsNoSpoon" are passwords.
_ASKS_FOR_VALUE = frozenset({"your", "here", "insert", "enter", "replace"})
_VALUE_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# An Amazon Resource Name says which resource a policy or role is ("arn:aws:iam::aws:policy/…"): public.
_RESOURCE_NAME = re.compile(r"^arn:[a-z-]+:")
# Code that says where the secret is kept, not the secret: a dotted name (``process.env.DB_PASSWORD``,
# ``self.password``) or a call or subscript (``os.getenv(``, ``get_password()``, ``os.environ[``). Each name is
# letters with digits only at its end, as people name things; generated parts (``pat.rg19u5u1w…``) are not.
_CODE_REFERENCE = re.compile(r"^[A-Za-z_$]+\d*(?:(?:\.[A-Za-z_$]+\d*)+$|(?:\.[A-Za-z_$]+\d*)*[(\[])")
# A file that holds the secret: a home, relative or absolute path of two parts or more (``/etc/app/key.pem``).
_FILE_PATH = re.compile(r"^(?:~|\.\.?)/\S*$|^/(?:[\w.-]+/)+[\w.-]+$")
# What documentation writes where a key goes: a marker word, an ellipsis (AWS's "…EXAMPLEKEY", "sk-…").
_STAND_IN_MARK = re.compile(r"EXAMPLE|\.{3}|…", re.IGNORECASE)
# A value that says it is fake ("FakeValues99…"), where only the context makes it a secret: detect-secrets drops
# a keyword value that says "fake" for that reason. A vendor's prefix outweighs the word, so formats ignore it.
_FAKE_MARK = re.compile(r"FAKE|DUMMY", re.IGNORECASE)
COUNTING_RUN = 6
"""Length of a run of consecutive characters (``123456``, ``abcdef``) that marks a value as typed by a person:
a generated base62 value of 40 characters holds one with a chance near 1 in 10 million, hex near 1 in 30,000.
Only a run no context names a secret is left alone for it: a typed value assigned to a secret's name is labelled
a secret by Kingfisher's rule examples (49 tune values, "abcdef0123456789…", "12345678901234567890…") against one
gitleaks negative, and redacting a typed value costs nothing."""


def _is_placeholder_body(token: str) -> bool:
    """A body of few distinct characters (``xxxx``, ``1111``) or spelled-out words is a stand-in, not a key."""
    body = _BODY.sub("", token, count=1)
    return len(set(body.replace("-", "").replace("_", ""))) < 6 or bool(re.search(r"x{6,}|X{6,}", body))


def _has_counting_run(value: str) -> bool:
    """Whether `value` counts up through `COUNTING_RUN` digits or letters in a row ("0123456789", "abcdefg").

    Letters and digits counting up in turn ("a1b2c3d4e5f6…") are not a stand-in here: Kingfisher's rule examples
    label such values as secrets, and redacting one costs nothing.
    """
    run = 1
    for previous, char in zip(value, value[1:], strict=False):
        same_kind = previous.isdigit() == char.isdigit() and previous.isalnum() and char.isalnum()
        run = run + 1 if same_kind and ord(char.lower()) == ord(previous.lower()) + 1 else 1
        if run >= COUNTING_RUN:
            return True
    return False


def is_stand_in(value: str) -> bool:
    """A value written in place of a key: a marker word or ellipsis, or few distinct characters.

    The marker words are "EXAMPLE" and, here only, "fake" and "dummy". Used where the context alone makes a value
    a secret (an assignment, a bearer header, a generated-looking run), so a stand-in there is the only evidence
    against it; vendor formats use `_is_placeholder_body`. A generated-looking run with no context is also a
    stand-in when it counts up (`_has_counting_run`).
    """
    # Counted over the whole value: a value a context names has no vendor prefix to set aside, so "open_sesame"
    # is two words, not the prefix "open_" before a body of four letters; "tok_1111111111" is still a fill.
    few = len(set(value.replace("-", "").replace("_", ""))) < 6 or bool(re.search(r"x{6,}|X{6,}", value))
    return bool(_STAND_IN_MARK.search(value) or _FAKE_MARK.search(value)) or few


def _random_enough(token: str) -> bool:
    """OpenAI-style ``sk-`` keys mix upper case, lower case and digits; ``sk-learn-tutorial-…`` does not."""
    return any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token)


def _vendor_tokens(text: str) -> Iterator[Span]:
    for match in _TOKEN.finditer(text):
        start, token = match.start(), match.group().rstrip(".")
        candidates = [(start, token)]
        if name := _NAME_PREFIX.match(token):  # "token=sq0atp-…": the value after the name
            candidates.append((start + name.end(), token[name.end() :]))
        for offset, candidate in candidates:
            if not _VENDOR.fullmatch(candidate) or _is_placeholder_body(candidate) or _STAND_IN_MARK.search(candidate):
                continue
            body = _BODY.sub("", candidate, count=1)
            if body.isalpha() and _looks_like_words(body):
                continue  # a letters-only format (Hugging Face) filled with words: ``hf_requiredCharacteristic…``
            if candidate.startswith("sk-") and not candidate.startswith("sk-ant-") and not _random_enough(candidate):
                continue
            yield offset, offset + len(candidate)
            break


def _config_password(text: str, match: re.Match[str], group: str) -> bool:
    """Whether `match` sets a password in a line of configuration (see `_CONFIG_PASSWORD_NAME`)."""
    value = match.group(group)
    between = text[match.start() : match.start(group)]
    if not _CONFIG_PASSWORD_NAME.match(between) or "=" not in between or ":" in between:
        return False
    if not value[0].isalpha() or _asks_for_value(value) or value.lower() in {"password", "passphrase"}:
        return False  # a CSS selector, a request for a value, or the field's own label ("login.password=Password")
    start, floor = match.start(), max(0, match.start() - _CONFIG_KEY_LIMIT)
    while start > floor and (text[start - 1].isalnum() or text[start - 1] in "_.-"):
        start -= 1
    if start > 0 and text[start - 1] not in "\n;":
        return False
    return _CONFIG_VALUE_END.match(text, match.end(group)) is not None


def _asks_for_value(value: str) -> bool:
    return any(word.lower() in _ASKS_FOR_VALUE for word in _VALUE_WORD.findall(value))


def _unbalanced_tail(value: str) -> int:
    """How many closing brackets end `value` without an opening one inside it: a call's, not the value's."""
    count = 0
    for closing, opening in ((")", "("), ("]", "["), ("}", "{")):
        extra = value.count(closing) - value.count(opening)
        while extra > 0 and value[: len(value) - count].endswith(closing):
            count, extra = count + 1, extra - 1
    return count


def find_secrets(text: str) -> Iterator[Span]:
    """Credentials: vendor key formats, private key blocks, JWTs and the other credential shapes below.

    Slack webhooks, Telegram bot tokens, bearer and basic auth values, passwords in URLs, and values assigned to
    names ending in password, secret, token, api key or credentials (a value of words, a short count, a
    placeholder, a stand-in, a reference, code or a file path is not; words are a password in a line of
    configuration, see `_config_password`).
    """
    yield from _vendor_tokens(text)
    for match in _PRIVATE_KEY.finditer(text):
        body = re.sub(r"-----[^-]+-----|\s", "", match.group())
        if len(body) >= 40 and not _STAND_IN_MARK.search(body) and not re.search(r"x{6,}|X{6,}", body):
            yield match.span()
    for pattern in (_SLACK_WEBHOOK, _TELEGRAM):
        for match in pattern.finditer(text):
            yield match.span()
    for match in _BEARER.finditer(text):
        value = match.group("value")
        if not (is_stand_in(value) or _WORDS.match(value) or _CODE_REFERENCE.match(value)):
            yield match.span("value")
    for match in _URL_CREDENTIALS.finditer(text):
        yield match.span("value")
    for match in _ASSIGNED.finditer(text):
        group = next(name for name in ("double", "single", "value") if match.group(name) is not None)
        value = match.group(group).rstrip(".")
        if group == "value":  # unquoted, a call's closing brackets end it: "connect(password=db_password)"
            value = value[: len(value) - _unbalanced_tail(value)]
        if (
            len(value) < 6
            or _PLACEHOLDER.search(match.group(group))
            or (_WORDS.match(value) and not _config_password(text, match, group))
            or (value.isdigit() and len(value) < 12)
            or _CODE_REFERENCE.match(value.lstrip("\\"))
            or _FILE_PATH.match(value)
            or _RESOURCE_NAME.match(value)
            or is_stand_in(value)
        ):
            continue
        yield match.start(group), match.start(group) + len(value)


# --- high-entropy strings ------------------------------------------------------------------------------------

_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/_=-])")
_HEX = re.compile(r"^[0-9a-fA-F-]+$")
_OBJECT_ID = re.compile(r"^[a-z]{2,6}_[A-Za-z0-9]{8,}$")
# Base64 of a PNG, JPEG, GIF, PDF or ZIP file: content, not a credential; ``eyJ`` alone is a JSON header; an SSH
# public key blob (``AAAAB3NzaC1yc2E…``) is public; ``sha512-…`` is a Subresource Integrity digest of a file.
_NOT_SECRET_BASE64 = re.compile(
    r"^(?:iVBORw0KGgo|/9j/|R0lGOD|JVBERi0|UEsDB|eyJ|AAAA[BCE][0-9A-Za-z]NzaC|(?:sha(?:1|256|384|512)|md5)-)"
)
# Base64 right after a data URI's ";base64," is file content; after go.sum's "h1:" it is a module's digest.
_DATA_URI = re.compile(r";base64,$|(?<![\w-])h1:$")
_ARMOR_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,60})-----")
# The lines of an armoured block: base64, blank, or a header ("Version: GnuPG v2").
_ARMOR_LINES = re.compile(r"(?:[ \t]*\r?\n(?:[\w-]+: [^\r\n]*|[A-Za-z0-9+/=]*))*+")
ARMOR_LIMIT = 20_000
"""Characters within which an armoured block's END line is looked for (a 16384-bit public key is ~3 KB)."""
_WORD = re.compile(r"[A-Z]?[a-z]{2,}")
_ENTROPY_ID_LABEL = re.compile(
    r"\b(?:order|tracking|ref|reference|request|trace|span|correlation|commit|sha|hash|checksum|uuid|id)\b"
    r"\s*(?:id|number|no\.?)?\s*[:#=]?\s*$",
    re.IGNORECASE,
)
# A value assigned to a name that ends in "id" ("AUTH0_CLIENT_ID=", "applicationId = '", "app_id:"), as
# detect-secrets' is_likely_id_string reads it, or labelled public ("public key:"): it names, it does not unlock.
_ID_NAME = re.compile(
    r"(?:(?:^|(?<=[\s_.\-\"'$]))(?i:ids?)|(?<=[a-z0-9])(?:Ids?|IDs?)|(?i:\bpublic[ _-]?key))[\"']?"
    r"\s*(?::=|=>|[:=])?\s*[\"'`]?$"
)
_IN_URL = re.compile(r"://\S*$")
ENTROPY_BITS_PER_CHAR = 3.5
"""Shannon entropy a run must reach; random base62/base64 of 24+ characters sits near 4.2, prose near 3."""
CLASS_SWITCH_RATIO = 0.35
"""Share of neighbouring letters and digits of different classes (upper, lower, digit) a run must reach.
Random base62/base64 switches 0.62 of the time on average (fewer than 0.5% of 24-character strings fall
below 0.35); camelCase, snake_case and kebab-case identifiers built from words stay at or below 0.33."""
HEX_SHARE = 0.9
"""Share of hex digits past which a run reads as a digest (see `_mostly_hex`)."""
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


def _mostly_hex(run: str) -> bool:
    """A digest with a short tag ("…76257db-al32"): `HEX_SHARE` of its characters hex digits of one case.

    Generated base62 or base36 is a third to a half hex digits; a run past `HEX_SHARE` is a hash, a UUID or an id
    built on one, which the hex-only rule already leaves alone.
    """
    chars = [c for c in run if c.isalnum()]
    hex_digits = max(sum(c in "0123456789abcdef" for c in chars), sum(c in "0123456789ABCDEF" for c in chars))
    return hex_digits >= HEX_SHARE * len(chars)


def _public_armor(text: str) -> Iterator[Span]:
    """ASCII-armoured blocks that hold no secret: certificates, public keys, signatures, encrypted messages.

    Their base64 lines look generated but are public by design; private key blocks are `find_secrets`' job. A
    block whose END line is missing within `ARMOR_LIMIT` characters (a truncated paste) ends with its base64
    and header lines.
    """
    position = 0
    while begin := _ARMOR_BEGIN.search(text, position):
        end = text.find("-----END", begin.end(), begin.end() + ARMOR_LIMIT)
        if end == -1:
            lines = _ARMOR_LINES.match(text, begin.end())
            end = lines.end() if lines else begin.end()
        position = max(end, begin.end())
        if "PRIVATE" not in begin.group(1):
            yield begin.start(), end


def find_high_entropy(text: str) -> Iterator[Span]:
    """Runs of 24+ base64/base62 characters that look generated: likely secrets of a vendor we do not know.

    Hex-only and mostly-hex runs (git SHAs, checksums, UUIDs, a digest with a tag), ``prefix_…`` object ids
    (``cus_…``, ``pi_…``), base64 of common file formats, SSH public keys, SRI, go.sum and data-URI payloads,
    the lines of public armoured blocks (certificates, public keys), stand-ins and the path of a URL are left
    alone, as are runs labelled as an id ("request id", "commit", "tracking").
    """
    public = list(_public_armor(text))  # disjoint and in text order, so one bisection finds the block of a run
    public_starts = [start for start, _ in public]
    for match in _RUN.finditer(text):
        run = match.group().rstrip("=")
        block = bisect.bisect_right(public_starts, match.start()) - 1
        if block >= 0 and match.start() < public[block][1]:
            continue
        if _HEX.match(run) or _OBJECT_ID.match(run) or _NOT_SECRET_BASE64.match(run) or _mostly_hex(run):
            continue
        if is_stand_in(run) or _has_counting_run(run):
            continue
        if has_label(text, match.start(), _ENTROPY_ID_LABEL) or has_label(text, match.start(), _DATA_URI, 8):
            continue
        if has_label(text, match.start(), _ID_NAME):
            continue
        lead = len(run) - len(run.lstrip("/"))  # "ipfs://Qm…": the run took the slashes after the scheme
        if has_label(text, match.start() + lead, _IN_URL, 200):
            continue
        if _looks_random(run):
            yield match.span()
