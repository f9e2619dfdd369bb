"""Samples from secret scanners' rule files: each rule's ``examples`` and ``negative_examples`` (see PROVENANCE.md).

Nosey Parker (praetorian-inc/noseyparker) and Kingfisher (mongodb/kingfisher, which started from Nosey Parker's
rules), both Apache-2.0, keep next to every rule's pattern strings the rule must match and strings it must not;
their test suites check both. Here, per scanner:

- a text's secrets are what the secret rules' own patterns capture in it (every capture group of every match of
  every such rule, as the scanner reports them), so the spans are the source's, not ours. A rule's negative
  example is "not this rule", not "no secret": another rule may capture a secret in it, and then it is labelled
  with that rule's capture.
- a secret rule is, for Nosey Parker, one in the ``secret`` category; for Kingfisher, whose rules mostly have no
  category, one that is shown (not ``visible: false``, the helpers other rules depend on), not in the
  ``identifier`` or ``domain`` category and not named for an id, URL, domain or host.
- a positive example of a secret rule that no pattern matches under Python's `re` is left out, as is every
  example of another rule (an account id, a hostname): the scanner flags an identifier there, not a
  credential, and says nothing of the secrets around it.
- a negative example no rule captures anything in is a text with no secret, unless it is one in Keel's sense
  all the same (`AMBIGUOUS_NEGATIVES`, read the same way as ``extract.py``'s list).
- the scanners label secrets only: their texts carry ``labelled_kinds: ["secret"]``, so an email or address in
  them is neither a true nor a false positive.

The YAML is read with PyYAML (``pip install pyyaml``), only to parse it; nothing from the repository runs.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Rule = dict[str, Any]

# Kingfisher names its non-secret rules for what they find: "Algolia Application ID", "Artifactory JFrog URL".
_NAMED_FOR_A_PLACE = re.compile(r"\b(?:ID|Id|URL|Url|Domain|Host|Hostname|Endpoint|Region|Organization)\)?$")


def _noseyparker_secret(rule: Rule) -> bool:
    return "secret" in (rule.get("categories") or [])


def _kingfisher_secret(rule: Rule) -> bool:
    categories = rule.get("categories") or []
    return (
        rule.get("visible") is not False
        and "identifier" not in categories
        and "domain" not in categories
        and not _NAMED_FOR_A_PLACE.search(rule.get("name", ""))
    )


# repository: (commit, rules directory, which rules find secrets)
SCANNERS: dict[str, tuple[str, str, Callable[[Rule], bool]]] = {
    "praetorian-inc/noseyparker": (
        "2e6e7f36ce36619852532bbe698d8cb7a26d2da7",
        "crates/noseyparker/data/default/builtin/rules",
        _noseyparker_secret,
    ),
    "mongodb/kingfisher": ("ee7c0db3ef87575768f817820c24736249ffcdef", "data/rules", _kingfisher_secret),
}

# Negative examples that are secrets in Keel's sense (found reading the tune split; matched as substrings): a
# value of the right shape after a secret's name, which Nosey Parker's pattern misses only for its length or
# a suffix (one says "FIXME: modify the pattern to detect cases like the following").
AMBIGUOUS_NEGATIVES = (
    "postgresql://user:secret@[",  # the rule's positives label "user:secret" with a host it parses
    "password = 'super$ecret'",  # labelled when written with double quotes
    "6RtqHqPc66Y6DYbkydbrrFJTYnRoA7r40ts7LWS2SkINSFsRABxhJQQJ99BFACAAAAALGcqjAAASAZDO3eq",  # one character short
    "FHxhQGh77_JAHHIYpZ818UQ0aYjXIdMIxxgeR",  # a generated key without its vendor's prefix
    "TWITCH_STREAM_KEY =",  # a stream key publishes as its owner
    "client_credential='5pX8Q~",  # an Azure AD client secret, not matched by the generic rule
)

# Rust's regex allows a flag group inside a non-capturing group ("(?: (?s) .{0,40} )"); Python wants "(?s:".
_SCOPED_FLAGS = re.compile(r"\(\?:\s*\(\?([a-z]+)\)")


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True, text=True).stdout


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(_SCOPED_FLAGS.sub(r"(?\1:", pattern))
    except re.error:
        return None


def _captured(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """The spans Nosey Parker would report: each capture group of each match, or the match without groups."""
    spans: list[tuple[int, int]] = []
    for match in pattern.finditer(text):
        groups = [match.span(g) for g in range(1, (pattern.groups or 0) + 1) if match.group(g)]
        spans.extend(groups or [match.span()])
    return spans


def _rules(git_dir: Path, commit: str, rules_dir: str) -> Iterator[tuple[str, Rule]]:
    import yaml  # only needed to rebuild the set

    listing = _git(git_dir, "ls-tree", "--name-only", f"{commit}:{rules_dir}").split()
    for name in sorted(n for n in listing if n.endswith((".yml", ".yaml"))):
        path = f"{rules_dir}/{name}"
        for rule in yaml.safe_load(_git(git_dir, "show", f"{commit}:{path}")).get("rules", []):
            yield path, rule


def scanner_samples(repository: str, git_dir: Path) -> Iterator[dict[str, Any]]:
    """Positive examples of secret rules and every negative example, labelled with what secret rules capture."""
    commit, rules_dir, is_secret_rule = SCANNERS[repository]
    rules = list(_rules(git_dir, commit, rules_dir))
    secret_rules = [
        (rule["id"], pattern)
        for _, rule in rules
        if is_secret_rule(rule) and (pattern := _compile(rule["pattern"])) is not None
    ]
    for path, rule in rules:
        cases = [(t, True) for t in rule.get("examples") or [] if is_secret_rule(rule)]
        cases += [(t, False) for t in rule.get("negative_examples") or []]
        for text, positive in cases:
            if not isinstance(text, str) or not text.strip():
                continue
            spans = {(s, e, rule_id) for rule_id, pattern in secret_rules for s, e in _captured(pattern, text)}
            if positive and not spans:
                continue  # Python's re reads the pattern differently: the secret's span is unknown
            if not spans and any(marker in text for marker in AMBIGUOUS_NEGATIVES):
                continue
            items = _dedupe([_item(text, s, e, rule_id) for s, e, rule_id in sorted(spans)])
            yield {
                "source": f"{repository}:{path}",
                "text": text,
                "expected": items,
                "provider": rule["id"],
                "labelled_kinds": ["secret"],
            }


def _dedupe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per span (two rules capturing the same value name it once)."""
    seen: set[tuple[int, int]] = set()
    kept = []
    for item in items:
        if (item["start"], item["end"]) not in seen:
            seen.add((item["start"], item["end"]))
            kept.append(item)
    return kept


def _item(text: str, start: int, end: int, entity: str) -> dict[str, Any]:
    return {"kind": "secret", "value": text[start:end], "start": start, "end": end, "entity": entity}
