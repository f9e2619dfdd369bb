"""Build ``fresh.jsonl``: secrets labelled by three more scanners' own tests, a set nobody here tunes on.

    python bench/data/pii/extract_fresh.py --secretlint DIR --ripsecrets DIR --whispers DIR

Each DIR is a bare git mirror holding the commit pinned below; files are read with ``git show`` and nothing of
theirs is run (secretlint's expectations are its committed snapshot ``output.json`` files, read as JSON). Every
text is secrets-only (``labelled_kinds: ["secret"]``), texts already in ``external.jsonl`` are dropped, and
``in_scope`` comes from ``scope.py`` as for the other set. PROVENANCE.md, "Fresh set (never tuned on)", says
what was taken and why; ``bench/pii_guard.py --fresh`` scores it and never prints its texts.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import scope
from extract import PLACEHOLDER

HERE = Path(__file__).resolve().parent
OUT = HERE / "fresh.jsonl"
EXTERNAL = HERE / "external.jsonl"
SECRETLINT = ("secretlint/secretlint", "18346ba31b8173d52060b971221ab38c1943def0")
RIPSECRETS = ("sirwart/ripsecrets", "416e9d04d6ba8941fc3106bf986b6c8aa875767e")
WHISPERS = ("Skyscanner/whispers", "5832bf74dcb127128ba653ed87601c927124b5aa")
# Whispers' YAML fixtures whose every value sits on its key's line (integration.yml puts them on the next line;
# creditcards.yml holds no secret), with the number of secrets its tests expect: test_detection_by_value's
# counts, and for aws.yml test_detection_by_key's three keys.
WHISPERS_FIXTURES = {
    "apikeys.yml": 10,
    "hardcoded.yml": 5,
    "passwords.yml": 4,
    "falsepositive.yml": 4,
    "uri.yml": 2,
    "webhooks.yml": 3,
    "gitkeys.yml": 5,
    "placeholders.yml": 0,
    "aws.yml": 3,
}
# Fixtures in other formats, where every secret says "hardcoded" (test_detection_by_value asserts each value
# reported does), with the count that test expects; a line is one text.
WHISPERS_MARKED = {
    "language.sh": 14,
    "language.py": 11,
    "language.js": 4,
    "language.java": 3,
    "language.go": 9,
    "language.php": 4,
    "language.html": 3,
    ".npmrc": 3,
    ".pypirc": 1,
    "pip.conf": 2,
    "settings.conf": 1,
    "settings.cfg": 1,
    "settings.ini": 1,
    "settings.env": 1,
    "Dockerfile": 3,
    ".htpasswd": 2,
    ".aws/credentials": 3,
    "java.properties": 3,
    "plaintext.txt": 2,
}
WHISPERS_MARK = re.compile(r"(?:[^\s\"'`=,()<>]*)hardcoded(?:[^\s\"'`=,()<>]*)", re.IGNORECASE)
WHISPERS_SECTION = re.compile(r"^#?\s*(non)?compliant:?\s*$", re.IGNORECASE)
# A leaf: an optional list dash, an optional key with ": " or "=", and a scalar value.
WHISPERS_LEAF = re.compile(r"^\s*(?:-\s+)?(?:[\w.\-\"']+(?::\s+|=))?(?P<value>\S.*?)\s*$")

SNAPSHOTS = re.compile(r"^packages/@secretlint/(secretlint-rule-[\w-]+)/test/snapshots/([^/]+)/output\.json$")
# Rules that report something other than a secret's value (a file name, a home directory, a Kubernetes kind,
# patterns the test configures itself, the example rule, a comment filter): their snapshots say nothing here.
NOT_SECRET_RULES = {
    "secretlint-rule-example",
    "secretlint-rule-filter-comments",
    "secretlint-rule-no-dotenv",
    "secretlint-rule-no-homedir",
    "secretlint-rule-no-k8s-kind-secret",
    "secretlint-rule-pattern",
}
# Messages of secret rules that report an identifier, not a secret: a text holding one is left out (it is
# neither a labelled secret nor a negative the source vouches for).
NOT_SECRET_MESSAGES = {"AWSAccountID", "AzureClientId", "AzureTenantId"}


def _git(mirror: Path, *args: str) -> str:
    """Bytes decoded as they are: no newline translation, so the snapshots' offsets still hold."""
    return subprocess.run(["git", f"--git-dir={mirror}", *args], check=True, capture_output=True).stdout.decode()


def _item(text: str, start: int, end: int, entity: str) -> dict[str, Any]:
    return {"kind": "secret", "value": text[start:end], "start": start, "end": end, "entity": entity}


def _utf16_to_index(text: str, offset: int) -> int:
    """JavaScript's string offsets count UTF-16 code units; Python's count code points."""
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def secretlint_samples(mirror: Path) -> Iterator[dict[str, Any]]:
    """One text per snapshot directory of a secret rule: messages reported are secrets, no message means none.

    A snapshot directory holds the input file, the ``output.json`` secretlint is tested against and, for some,
    a ``.secretlintrc.json`` changing the rule's options; a directory with options and no message is left out
    (the option may be what silences a secret: ``options.allows``, ``enableIDScanRule-false``).
    """
    repo, commit = SECRETLINT
    paths = _git(mirror, "ls-tree", "-r", "--name-only", commit).splitlines()
    present = set(paths)
    for path in paths:
        match = SNAPSHOTS.match(path)
        if not match or match[1] in NOT_SECRET_RULES:
            continue
        folder = path.rsplit("/", 1)[0]
        inputs = [p for p in paths if p.rsplit("/", 1)[0] == folder and p.rsplit("/", 1)[1].startswith("input")]
        if len(inputs) != 1:
            continue
        try:
            text = _git(mirror, "show", f"{commit}:{inputs[0]}")
        except UnicodeDecodeError:
            continue  # a binary input (a DER key): not text a guard is given
        output = json.loads(_git(mirror, "show", f"{commit}:{path}"))
        if output.get("sourceContent", text) != text:
            raise ValueError(f"{path}: sourceContent differs from {inputs[0]}")
        messages = output["messages"]
        if any(m.get("messageId") in NOT_SECRET_MESSAGES for m in messages):
            continue
        if not messages and f"{folder}/.secretlintrc.json" in present:
            continue
        items = []
        for message in messages:
            start, end = (_utf16_to_index(text, offset) for offset in message["range"])
            items.append(_item(text, start, end, f"{match[1]}:{message.get('messageId')}"))
        yield {"source": f"{repo}:{inputs[0]}", "text": text, "expected": items}


def _ripsecrets_value(line: str) -> tuple[int, int]:
    """The span of the line's longest token between blanks, quotes, ``=``, ``<>`` and a colon before a blank.

    ripsecrets' test says only that each line of a ``one_per_line`` file holds one secret (it counts reported
    lines); every such line is one value after a name or a tag, so its longest token is that value.
    """
    tokens = [m.span() for m in re.finditer(r"(?:[^\s\"'`=<>:]|:(?!\s))+", line)]
    return max(tokens, key=lambda span: span[1] - span[0])


def ripsecrets_samples(mirror: Path) -> Iterator[dict[str, Any]]:
    """Each line of ``test/one_per_line/*`` with its secret; each line of ``test/none`` as a negative."""
    repo, commit = RIPSECRETS
    for path in _git(mirror, "ls-tree", "-r", "--name-only", commit, "test/one_per_line").splitlines():
        for line in _git(mirror, "show", f"{commit}:{path}").splitlines():
            if line.strip() and not PLACEHOLDER.search(line):  # the span may miss a placeholder value
                start, end = _ripsecrets_value(line)
                entity = f"ripsecrets:{path.rsplit('/', 1)[1]}"
                yield {"source": f"{repo}:{path}", "text": line, "expected": [_item(line, start, end, entity)]}
    for line in _git(mirror, "show", f"{commit}:test/none").splitlines():
        # The file's own note: this line's password is a secret, silenced through .secretsignore.
        if line.strip() and "secret is in .secretsignore" not in line:
            yield {"source": f"{repo}:test/none", "text": line, "expected": []}


def whispers_samples(mirror: Path) -> Iterator[dict[str, Any]]:
    """Each value line of a fixture: those under ``noncompliant`` are secrets, those under ``compliant`` not.

    Whispers' fixtures are split into a compliant and a noncompliant part (a ``compliant:`` key or a
    ``# Compliant`` comment) and its tests count the secrets reported per file; a file whose noncompliant
    values do not number what the test expects is left out whole.
    """
    repo, commit = WHISPERS
    for name, expected in WHISPERS_FIXTURES.items():
        path = f"tests/fixtures/{name}"
        positive: bool | None = None
        samples = []
        for line in _git(mirror, "show", f"{commit}:{path}").splitlines():
            if section := WHISPERS_SECTION.match(line.strip()):
                positive = bool(section[1])
                continue
            leaf = WHISPERS_LEAF.match(line)
            if positive is None or not leaf or line.strip().startswith("#") or line.rstrip().endswith(":"):
                continue
            text = line.strip()
            start, end = leaf.span("value")
            value = line[start:end]
            if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
                start, end = start + 1, end - 1  # the quotes are YAML's, not the secret's
            offset = len(line) - len(line.lstrip())
            items = [_item(text, start - offset, end - offset, f"whispers:{name}")] if positive else []
            samples.append({"source": f"{repo}:{path}", "text": text, "expected": items})
        if sum(1 for sample in samples if sample["expected"]) == expected:
            yield from samples


def whispers_marked_samples(mirror: Path) -> Iterator[dict[str, Any]]:
    """Each line of a fixture with values marked "hardcoded": the marked tokens are secrets, other lines none.

    A file is taken only when its marked tokens number what the test counts, so each is a value Whispers
    reports and nothing else in the file is; section headings (``# Compliant``) are left out.
    """
    repo, commit = WHISPERS
    for name, expected in WHISPERS_MARKED.items():
        path = f"tests/fixtures/{name}"
        samples = []
        for line in _git(mirror, "show", f"{commit}:{path}").splitlines():
            text = line.strip()
            if len(text) < 6 or text.startswith("#!") or re.search(r"\bcompliant\b", text, re.IGNORECASE):
                continue
            entity = f"whispers:{name}"
            items = [_item(text, *m.span(), entity) for m in WHISPERS_MARK.finditer(text)]
            samples.append({"source": f"{repo}:{path}", "text": text, "expected": items})
        if sum(len(sample["expected"]) for sample in samples) == expected:
            yield from samples


def _label(sample: dict[str, Any]) -> dict[str, Any] | None:
    """Scope notes as in ``extract.py``; a positive whose value is a placeholder is left out, as there."""
    if any(PLACEHOLDER.search(item["value"]) for item in sample["expected"]):
        return None
    for item in sample["expected"]:
        reason = scope.out_of_scope(item["kind"], item["entity"], sample["text"], item["start"], item["end"])
        item["in_scope"] = reason is None
        if reason:
            item["scope_note"] = reason
    sample["expected"].sort(key=lambda i: i["start"])
    sample["labelled_kinds"] = ["secret"]
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secretlint", type=Path, required=True, help="bare git dir of secretlint/secretlint")
    parser.add_argument("--ripsecrets", type=Path, required=True, help="bare git dir of sirwart/ripsecrets")
    parser.add_argument("--whispers", type=Path, required=True, help="bare git dir of Skyscanner/whispers")
    args = parser.parse_args()
    with EXTERNAL.open(encoding="utf-8") as lines:
        seen = {json.loads(line)["text"] for line in lines}
    samples = []
    for sample in (
        *secretlint_samples(args.secretlint),
        *ripsecrets_samples(args.ripsecrets),
        *whispers_samples(args.whispers),
        *whispers_marked_samples(args.whispers),
    ):
        if sample["text"] in seen:
            continue  # already in the public set, or a duplicate within this one
        seen.add(sample["text"])
        if (labelled := _label(sample)) is not None:
            samples.append(labelled)
    OUT.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    positives = sum(1 for s in samples if s["expected"])
    print(f"{len(samples)} samples ({positives} with a secret) -> {OUT}")


if __name__ == "__main__":
    main()
