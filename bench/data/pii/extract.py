"""Rebuild ``external.jsonl``: labelled PII samples taken from other projects' test data (see PROVENANCE.md).

Each source is read from a bare git mirror at a pinned commit; nothing is executed: Python test files are
parsed with `ast` and only literal parametrize cases are kept, Go rule files are scanned for literal string
lists. Every sample gets its split from a hash of its text, fixed before any detector was changed:

    python bench/data/pii/extract.py --presidio DIR --presidio-research DIR --detect-secrets DIR --gitleaks DIR \
        --noseyparker DIR --kingfisher DIR
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import scanner_rules
import scope

HERE = Path(__file__).resolve().parent
OUT = HERE / "external.jsonl"

COMMITS = {
    "microsoft/presidio": "0aa9f8e44275cb52c00fbbebe19168e934e1f076",
    "microsoft/presidio-research": "7622dec1e5f7d25dc60b57c28c39f4c4af197018",
    "Yelp/detect-secrets": "5e141933554a0b74e7341841f318be21e895339c",
    "gitleaks/gitleaks": "b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b",
    **{repo: commit for repo, (commit, _, _) in scanner_rules.SCANNERS.items()},
}

# Presidio entity -> Keel kind. Entities Keel does not claim to detect map to None: their spans are "ignored"
# (a finding on them is neither a true nor a false positive) and their texts are not counted as negatives.
ENTITY_KIND: dict[str, str | None] = {
    "CREDIT_CARD": "payment_card",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "IBAN_CODE": "iban",
    "US_SSN": "us_ssn",
    "IP_ADDRESS": "ip_address",
    "UK_NHS": "national_id",
    "UK_NINO": "national_id",
    "IT_FISCAL_CODE": "national_id",
    "ES_NIF": "national_id",
    "ES_NIE": "national_id",
    "PL_PESEL": "national_id",
    "SE_PERSONNUMMER": "national_id",
    "DE_TAX_ID": "national_id",
    "DE_ID_CARD": "national_id",
    "FI_PERSONAL_IDENTITY_CODE": "national_id",
    "CA_SIN": "national_id",
}

# Presidio recognizer test files read, and the entity their cases label. Date and URL tests only add texts
# with no Keel kind in them (near misses); their positives are dates and URLs, which Keel does not redact.
PRESIDIO_FILES: dict[str, str] = {
    "test_credit_card_recognizer.py": "CREDIT_CARD",
    "test_email_recognizer.py": "EMAIL_ADDRESS",
    "test_phone_recognizer.py": "PHONE_NUMBER",
    "test_iban_recognizer.py": "IBAN_CODE",
    "test_us_ssn_recognizer.py": "US_SSN",
    "test_ip_recognizer.py": "IP_ADDRESS",
    "test_uk_nhs_recognizer.py": "UK_NHS",
    "test_uk_nino_recognizer.py": "UK_NINO",
    "test_it_fiscal_code_recognizer.py": "IT_FISCAL_CODE",
    "test_es_nif_recognizer.py": "ES_NIF",
    "test_es_nie_recognizer.py": "ES_NIE",
    "test_pl_pesel_recognizer.py": "PL_PESEL",
    "test_se_personnummer_recognizer.py": "SE_PERSONNUMMER",
    "test_de_tax_id_recognizer.py": "DE_TAX_ID",
    "test_de_id_card_recognizer.py": "DE_ID_CARD",
    "test_fi_personal_identity_code_recognizer.py": "FI_PERSONAL_IDENTITY_CODE",
    "test_ca_sin_recognizer.py": "CA_SIN",
    "test_date_recognizer.py": "DATE_TIME",
    "test_url_recognizer.py": "URL",
}
NEAR_MISS_ONLY = {"DATE_TIME", "URL"}

DETECT_SECRETS_FILES = (
    "artifactory_test.py aws_key_test.py azure_storage_key_test.py basic_auth_test.py cloudant_test.py "
    "discord_test.py github_token_test.py gitlab_token_test.py ibm_cloud_iam_test.py ibm_cos_hmac_test.py "
    "jwt_test.py mailchimp_key_test.py npm_test.py openai_test.py private_key_test.py pypi_token_test.py "
    "sendgrid_test.py slack_test.py softlayer_test.py square_oauth_test.py stripe_key_test.py "
    "telegram_token_test.py twilio_test.py"
).split()


def git_show(git_dir: Path, commit: str, path: str) -> str:
    """One file of a bare mirror at `commit`."""
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def split_of(text: str) -> str:
    """``holdout`` for half the texts by a hash of the text alone, ``tune`` for the rest."""
    return "holdout" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "tune"


def parametrize_cases(source: str) -> Iterator[dict[str, Any]]:
    """Every literal case of every ``pytest.mark.parametrize`` in `source`, as a dict of argument names."""
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "parametrize" or len(node.args) < 2:
            continue
        try:
            names_value = ast.literal_eval(node.args[0])
        except ValueError:
            continue
        names = [n.strip() for n in names_value.split(",")] if isinstance(names_value, str) else list(names_value)
        if not isinstance(node.args[1], ast.List | ast.Tuple):
            continue
        for element in node.args[1].elts:
            try:
                value = ast.literal_eval(element)
            except (ValueError, SyntaxError, TypeError):
                continue  # a computed case (a helper call): not a literal, skipped
            values = value if isinstance(value, tuple) and len(names) > 1 else (value,)
            if len(values) == len(names):
                yield dict(zip(names, values, strict=True))


def _positions(case: dict[str, Any]) -> list[tuple[int, int]] | None:
    for key in ("expected_positions", "expected_res", "expected_position"):
        if key in case:
            raw = case[key]
            if raw and isinstance(raw[0], int):
                raw = (raw,)
            return [(int(a), int(b)) for a, b in raw]
    return None


def presidio_samples(git_dir: Path) -> Iterator[dict[str, Any]]:
    """Texts of presidio's recognizer tests with the spans each test expects."""
    commit = COMMITS["microsoft/presidio"]
    for name, entity in PRESIDIO_FILES.items():
        path = f"presidio-analyzer/tests/{name}"
        for case in parametrize_cases(git_show(git_dir, commit, path)):
            text = case.get("text", case.get("iban"))
            positions = _positions(case)
            if not isinstance(text, str) or positions is None or "expected_len" not in case:
                continue
            if len(positions) != case["expected_len"]:
                continue
            if entity in NEAR_MISS_ONLY:
                items = [_item(None, text, s, e, entity) for s, e in positions]
            else:
                entities = case.get("entities") or [entity] * len(positions)
                items = [
                    _item(ENTITY_KIND[ent], text, s, e, ent) for ent, (s, e) in zip(entities, positions, strict=False)
                ]
            yield {"source": f"microsoft/presidio:{path}", "text": text, "expected": items}


def _item(kind: str | None, text: str, start: int, end: int, entity: str) -> dict[str, Any]:
    value = text[start:end]
    stripped = value.strip()  # a few presidio spans include the blank before the value
    start += len(value) - len(value.lstrip())
    return {"kind": kind, "value": stripped, "start": start, "end": start + len(stripped), "entity": entity}


def presidio_research_samples(git_dir: Path) -> Iterator[dict[str, Any]]:
    """presidio-research's synthetic set (Faker values in sentence templates), every span labelled."""
    path = "data/synth_dataset_v2.json"
    records = json.loads(git_show(git_dir, COMMITS["microsoft/presidio-research"], path))
    for record in records:
        text = record["full_text"]
        items = [
            _item(
                ENTITY_KIND.get(span["entity_type"]),
                text,
                span["start_position"],
                span["end_position"],
                span["entity_type"],
            )
            for span in record["spans"]
        ]
        yield {"source": f"microsoft/presidio-research:{path}", "text": text, "expected": items}


def detect_secrets_samples(git_dir: Path) -> Iterator[dict[str, Any]]:
    """Single-token payloads of detect-secrets' plugin tests: flagged ones are secrets, the rest near misses."""
    commit = COMMITS["Yelp/detect-secrets"]
    for name in DETECT_SECRETS_FILES:
        path = f"tests/plugins/{name}"
        for case in parametrize_cases(git_show(git_dir, commit, path)):
            payload = case.get("payload", case.get("line"))
            flag = case.get("should_flag", True if len(case) == 1 else None)
            if not isinstance(payload, str) or not isinstance(flag, bool):
                continue
            items = [_item("secret", payload, 0, len(payload), name.removesuffix("_test.py"))] if flag else []
            yield {"source": f"Yelp/detect-secrets:{path}", "text": payload, "expected": items, "token": True}


_GO_LIST = re.compile(
    r"\b(tps|fps)\s*(?::=|=)\s*(?:\[\]string\{|append\(tps,)[ \t]*$(?P<body>.*?)^\s*[})]", re.S | re.M
)
_GO_STRING = re.compile(r'^\s*(?:`(?P<raw>[^`]*)`|"(?P<quoted>(?:[^"\\]|\\.)*)"),\s*(?://.*)?$', re.M)
_KEYWORDS = re.compile(r"Keywords:\s*\[\]string\{(?P<body>[^}]*)\}")
_CURL_SECRET = re.compile(
    r"(?:(?:-u|--user)\s+['\"]?(?P<user>[^\s'\"]+)|Authorization:\s*(?:Basic|Bearer|Token|Api-Token)?\s*(?P<auth>[^\s'\"]+)"
    r"|(?:apikey|Api-Token|Token|X-Octopus-ApiKey):\s*(?P<header>[^\s'\"]+))",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[^\s\"'`<>(){}\[\],;\\:]+")
_NAME_PREFIX = re.compile(r"^[A-Za-z_][\w.-]{0,40}=(?=[^=])")
_URL_USERINFO = re.compile(r"://(?P<userinfo>[^\s:/@]+:[^\s/@]+)@")
_ASSIGNED_NAME = re.compile(r"[\"']?\s*(?::=|=|:|\?=)")


def _go_literals(body: str) -> Iterator[str]:
    for literal in _GO_STRING.finditer(body):
        text = literal.group("raw")
        if text is None:
            text = json.loads('"' + literal.group("quoted") + '"')
        if text.strip():
            yield text


def _secret_span(text: str, keywords: list[str], curl: bool) -> tuple[int, int]:
    """Where the secret of a gitleaks true-positive line is: URL credentials, else a value (not a name being
    assigned to) that starts with a rule keyword, else the longest value."""
    if credentials := _URL_USERINFO.search(text):
        return credentials.span("userinfo")
    if curl:
        for match in _CURL_SECRET.finditer(text):
            group = next(g for g in ("user", "auth", "header") if match.group(g))
            return match.span(group)
    values: list[tuple[int, int, str]] = []
    tokens = list(_TOKEN.finditer(text))
    for token in tokens:
        named = _ASSIGNED_NAME.match(text, token.end()) or re.match(r"=[\"'`]", text[token.end() - 1 : token.end() + 1])
        if named and len(tokens) > 1:
            continue  # a name being assigned to: `KEY:`, `KEY =`, `KEY="…"`
        start, value = token.start(), token.group()
        if name := _NAME_PREFIX.match(value):  # "token=sq0atp-…": the value after the name
            start, value = start + name.end(), value[name.end() :]
        values.append((start, start + len(value), value))
    if not values:  # every token a name: the last one is the value ("KEY: value:")
        last = tokens[-1]
        values.append((last.start(), last.end(), last.group()))
    keyed = [v for v in values if any(v[2].lower().startswith(k.lower()) and len(v[2]) > len(k) + 8 for k in keywords)]
    start, end, _ = max(keyed or values, key=lambda v: len(v[2]))
    return start, end


def gitleaks_samples(git_dir: Path) -> Iterator[dict[str, Any]]:
    """Literal true- and false-positive strings of gitleaks' rule definitions, plus secrets generated from them."""
    commit = COMMITS["gitleaks/gitleaks"]
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "--name-only", f"{commit}:cmd/generate/config/rules"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in sorted(n for n in listing if n.endswith(".go")):
        path = f"cmd/generate/config/rules/{name}"
        source = git_show(git_dir, commit, path)
        keywords = [k for m in _KEYWORDS.finditer(source) for k in re.findall(r'"([^"]+)"', m.group("body"))]
        provider = name.removesuffix(".go")
        for block in _GO_LIST.finditer(source):
            for text in _go_literals(block.group("body")):
                sample: dict[str, Any] = {"source": f"gitleaks/gitleaks:{path}", "text": text, "provider": provider}
                if block.group(1) == "tps":
                    start, end = _secret_span(text, keywords, provider == "curl")
                    sample["expected"] = [_item("secret", text, start, end, provider)]
                else:
                    sample["expected"] = []
                yield sample
        yield from _generated_samples(source, path, provider)


# --- secrets generated the way gitleaks' rule tests generate them -------------------------------------------

_UTIL_CLASSES = {
    "Numeric": "[0-9]",
    "Hex": "[a-f0-9]",
    "AlphaNumeric": "[a-z0-9]",
    "AlphaNumericExtendedShort": "[a-z0-9_-]",
    "AlphaNumericExtended": "[a-z0-9=_-]",
    "AlphaNumericExtendedLong": "[a-z0-9/=_+-]",
}
_SAMPLE_CALL = re.compile(r"GenerateSampleSecrets?\(\s*\"(?P<id>[^\"]*)\",\s*(?P<expr>.*)$", re.M)
_UTIL_CALL = re.compile(r'utils\.(?P<fn>\w+)\((?:"(?P<size>[\d,]+)")?\)')
_TEMPLATES = (
    '{i}_token = "{s}"',
    "export {I}_API_KEY={s}",
    '{{"{i}_secret": "{s}"}}',
    "{i}Key: {s}",
    "Here is the {i} key I used yesterday: {s} (please rotate it)",
    "{I}_TOKEN={s}",
)


def _expand_class(spec: str) -> str:
    chars: list[str] = []
    index = 0
    while index < len(spec):
        char = spec[index]
        if char == "\\" and index + 1 < len(spec):
            escaped = spec[index + 1]
            chars.extend(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
                if escaped == "w"
                else "0123456789"
                if escaped == "d"
                else escaped
            )
            index += 2
        elif index + 2 < len(spec) and spec[index + 1] == "-":
            chars.extend(chr(c) for c in range(ord(char), ord(spec[index + 2]) + 1))
            index += 3
        else:
            chars.append(char)
            index += 1
    return "".join(dict.fromkeys(chars))


def _generate(pattern: str, rng: random.Random) -> str | None:
    """A string matching `pattern`, for the few regex forms gitleaks' generators use; None for any other."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            close = pattern.index("]", index + 1)
            alphabet, index = _expand_class(pattern[index + 1 : close]), close + 1
        elif char == "\\":
            escaped = pattern[index + 1]
            alphabet = _expand_class("\\" + escaped) if escaped in "wd" else escaped
            index += 2
        elif char in "()|?*+^$":
            return None
        else:
            alphabet, index = char, index + 1
        low = high = 1
        repeat = re.match(r"\{(\d+)(,(\d*))?\}", pattern[index:])
        if repeat:
            low = int(repeat.group(1))
            high = low if repeat.group(2) is None else int(repeat.group(3) or low + 16)
            index += repeat.end()
        out.extend(rng.choice(alphabet) for _ in range(rng.randint(low, high)))
    return "".join(out)


def _parse_secret_expr(expr: str, rng: random.Random) -> str | None:
    """The value of a Go concatenation of string literals and ``secrets.NewSecret(...)`` calls; None if other."""
    parts: list[str] = []
    rest = expr.strip()
    while rest:
        rest = rest.lstrip(" +")
        if rest.startswith('"') or rest.startswith("`"):
            close = rest.index(rest[0], 1)
            parts.append(rest[1:close])
            rest = rest[close + 1 :]
        elif rest.startswith("secrets.NewSecret("):
            inner = rest[len("secrets.NewSecret(") :]
            if call := _UTIL_CALL.match(inner):
                fn, size = call.group("fn"), call.group("size")
                if fn == "Hex8_4_4_4_12":
                    pattern = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                elif fn in _UTIL_CLASSES and size:
                    pattern = _UTIL_CLASSES[fn] + "{" + size + "}"
                else:
                    return None
                rest = inner[call.end() :]
            elif inner[:1] in ('"', "`"):
                close = inner.index(inner[0], 1)
                pattern, rest = inner[1:close], inner[close + 1 :]
            else:
                return None
            if not rest.startswith(")"):
                return None
            value = _generate(pattern, rng)
            if value is None:
                return None
            parts.append(value)
            rest = rest[1:]
        elif rest.startswith(")"):
            return "".join(parts) if parts else None
        else:
            return None
    return None


def _generated_samples(source: str, path: str, provider: str) -> Iterator[dict[str, Any]]:
    for call in _SAMPLE_CALL.finditer(source):
        seed = hashlib.sha256(f"{path}:{call.start()}".encode()).digest()
        rng = random.Random(seed)
        secret = _parse_secret_expr(call.group("expr"), rng)
        if not secret or "\\" in secret:
            continue
        identifier = call.group("id")
        for template in rng.sample(_TEMPLATES, 2):
            text = template.format(i=identifier.lower(), I=identifier.upper(), s=secret)
            start = text.index(secret)
            yield {
                "source": f"gitleaks/gitleaks:{path} (generated)",
                "text": text,
                "provider": provider,
                "expected": [_item("secret", text, start, start + len(secret), provider)],
            }


# --- labels: what is excluded, added, and in Keel's documented scope -------------------------------------

# Negatives of other tools that are secrets all the same in Keel's sense (a key one character off its
# vendor's format still leaks, a public example key is still a key) or random strings nobody can call:
# left out rather than counted either way. Matched as substrings.
AMBIGUOUS_NEGATIVES = (
    "sk-ant-api03-abc123xyz",
    "sk-ant-admin01-abc123xyz",
    "AIzaSy",
    "AIzaTesb6",
    "AIzayDNSX",
    "GWw4hjABFzZCGiRpmlDyDdo87",
    "CloudFront-Signature",
    "USK@u2vn3Lh6Kte2",
    "gAAAAABdHkoqb9",
    "6wqX6fNUXA/",
    "B9mTcFSck2LzJO2S3ols63",
    "rA1wk0Y45YCufyfq",
    "5cb4a5f04cd412fe",
    "acdeFf05b1a6d4c89",
    "0023452Lllk2Kqj",
    "sgp_",
    "BcAeb6640ad7DAD46",
    "3Kof2VffNQ0QgYIhXUPJ",
    "AbCeFG123",
    "3012a5754bbd716926f99c028f7ea428-us18",
    "T4BlbkFJ",
    "bot110201543:",
    "foo:AAH1bjq",
    "pypi-AgEIcHlwaS5vcmcCJDU3OTM1MjliLWIyYTYtNDEwOC05NzRkLTM0MjNiNmEwNWIzYgACF1sxLFsibWluaW1h",
    "MZ1yGvKTj",
    "PZ1yGvKTj",
    "MTAyOTQ4MTN5OTU5MTDwMEcxNg0",
    "SG.ngeVfQFYQlKU0ufo8x5d1A..",
    "AG.ngeVfQFYQlKU0ufo8x5d1A",
    "glsoat-PREfix_helloworld380_testin_pretty_long_token_long_",
    "GR1348941PREfix_helloworld380_testin_pretty_long_token_long_",
    "glptt-Need5_T00-be-exactly-40-chars--ELse_failing",
    "glimt-my-tokens_are-correctAB",
    "gloas-checking_Length-Is-",
    "9276a43e2951aa46e2b1c33ED38357DB",
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
    "glpat-hellOWorld380 testin",
    "glpat_hellOworld380_testin",
    "gldt-seems_too000Sshorty",
    "GR1348941helloWord0",
    "glagent-hellOworld380_testin",
    "glptt-hellOworld380_testin",
    "sk-proj-Xi8tdMjHV6pmbBbwilTeT4",
    "eyJhbasdGciOiJIUaddasd",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ.eyJzdWIi",
)
# Items the source did not label because its test was about another kind.
EXTRA_ITEMS: dict[str, list[tuple[str, str]]] = {
    "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": [("secret", "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")],
    'author = "james.fake@ymail.com",': [("email", "james.fake@ymail.com")],
    '--mail-from "src@gmail.com"': [("email", "src@gmail.com"), ("email", "dst@gmail.com"), ("email", "src@gmail.com")],
    "--user roger23@gmail.com:pQ9wTxu4Fg": [("email", "roger23@gmail.com")],
    '"emailAddress":"test@example.com"': [("email", "test@example.com")],
    "<mailgun@sandbox7dbc123bccd4314c0aae8b23599d35f5b6.mailgun.org>": [
        ("email", "mailgun@sandbox7dbc123bccd4314c0aae8b23599d35f5b6.mailgun.org"),
        ("email", "joe@example.com"),
    ],
    "user@domain.com": [("email", "user@domain.com")],
}
# A positive whose value is a placeholder: Keel leaves ``xxxx`` and ``EXAMPLE`` keys alone on purpose.
PLACEHOLDER = re.compile(r"x{6,}|X{6,}|Z{6,}|EXAMPLE|1234567890AB|12345678ABCDEFH|\*{4,}", re.IGNORECASE)
# Texts that are no secret whatever the rule said: a marker, and lines listed among gitleaks' true positives
# only to exercise a path rule.
NOT_SECRETS = ('"type": "service_account"',)


def _merge_duplicates(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One sample per text: labels united (a value one test expects is a value), sources joined."""
    merged: dict[str, dict[str, Any]] = {}
    for sample in samples:
        kept = merged.setdefault(sample["text"], {**sample, "expected": [], "source": []})
        if sample["source"] not in kept["source"]:
            kept["source"].append(sample["source"])
        for item in sample["expected"]:
            if all((i["start"], i["end"]) != (item["start"], item["end"]) for i in kept["expected"]):
                kept["expected"].append(item)
    return list(merged.values())


def _label(sample: dict[str, Any]) -> dict[str, Any] | None:
    """`sample` with its extra items and scope notes, or None when it is left out."""
    text = sample["text"]
    if any(marker in text for marker in AMBIGUOUS_NEGATIVES) and not any(
        i["kind"] == "secret" for i in sample["expected"]
    ):
        return None
    if text in NOT_SECRETS:
        return None
    if any(i["kind"] == "secret" and PLACEHOLDER.search(i["value"]) for i in sample["expected"]):
        return None
    for marker, extra in EXTRA_ITEMS.items():
        if marker in text:
            position = 0
            for kind, value in extra:
                start = text.index(value, position)
                position = start + 1
                if all((i["kind"], i["start"]) != (kind, start) for i in sample["expected"]):
                    sample["expected"].append(_item(kind, text, start, start + len(value), "added"))
                if "labelled_kinds" in sample and kind not in sample["labelled_kinds"]:
                    sample["labelled_kinds"].append(kind)  # now labelled here too: a miss of it counts
    for item in sample["expected"]:
        if item["kind"] is not None:
            reason = scope.out_of_scope(item["kind"], item["entity"], text, item["start"], item["end"])
            item["in_scope"] = reason is None
            if reason:
                item["scope_note"] = reason
    sample["expected"].sort(key=lambda i: i["start"])
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for repo in ("presidio", "presidio-research", "detect-secrets", "gitleaks", "noseyparker", "kingfisher"):
        parser.add_argument(f"--{repo}", type=Path, required=True, help=f"bare git dir of {repo}")
    args = parser.parse_args()
    samples = [
        *presidio_samples(args.presidio),
        *presidio_research_samples(args.presidio_research),
        *detect_secrets_samples(args.detect_secrets),
        *gitleaks_samples(args.gitleaks),
        *scanner_rules.scanner_samples("praetorian-inc/noseyparker", args.noseyparker),
        *scanner_rules.scanner_samples("mongodb/kingfisher", args.kingfisher),
    ]
    labelled = [s for s in map(_label, _merge_duplicates(samples)) if s is not None]
    for sample in labelled:
        sample["source"] = " + ".join(sample["source"])
        sample["split"] = split_of(sample["text"])
    samples = labelled
    OUT.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    print(f"{len(samples)} samples -> {OUT}")


if __name__ == "__main__":
    main()
