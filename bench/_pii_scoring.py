"""Scoring `PIIGuard` on labelled samples: per kind, raw and within Keel's documented scope.

Two ways to count, one per kind of set:

- ``exact`` (the in-repo set, ``tests/data/pii_samples.json``): a finding is a true positive when its kind and
  exact text match a labelled item; anything else found is a false positive.
- ``overlap`` (the public set, ``bench/data/pii/external.jsonl``): other projects mark spans their own way (a
  whole ``user:password`` pair, the blank before a number), so a finding is a true positive when it overlaps a
  labelled item of the same kind; a second finding on an item already matched counts neither way. A finding
  on a span labelled with a kind Keel does not detect (a person's name, a date, a driver's licence) counts
  neither way either, as does a finding of a kind the sample's source does not label (``labelled_kinds``:
  secret scanners' rule examples label secrets only). ``high_entropy`` findings match ``secret`` labels: that
  detector exists to catch the secrets of vendors it knows no prefix for.

Recall is given twice: over every labelled item ("raw") and over the items inside the documented scope
(``in_scope`` in the data, decided by ``bench/data/pii/scope.py``). Precision is over every finding.

The public set is split by a hash of each text (`split_of`, the rule ``bench/data/pii/extract.py`` applied when
the set was built): ``holdout`` when the first byte of SHA-256 of the UTF-8 text is even, ``tune`` otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from keel.guardrails import Finding, GuardContext
from keel.guardrails.pii import PII_KINDS, PIIGuard

FAMILY = {"high_entropy": "secret"}
PUBLIC_SET = Path(__file__).resolve().parent / "data" / "pii" / "external.jsonl"
FRESH_SET = Path(__file__).resolve().parent / "data" / "pii" / "fresh.jsonl"
SPLITS = ("tune", "holdout")


def split_of(text: str) -> str:
    """``holdout`` when the first byte of SHA-256 of `text` is even, else ``tune`` (as ``extract.py`` decided)."""
    return "holdout" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "tune"


def public_samples(split: str, path: Path = PUBLIC_SET) -> Iterator[dict[str, Any]]:
    """The samples of one split of the public set; a stored split that disagrees with the rule is an error."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            sample = json.loads(line)
            if sample["split"] != split_of(sample["text"]):
                raise ValueError(f"{path}: stored split {sample['split']!r} breaks the hash rule")
            if sample["split"] == split:
                yield sample


def fresh_samples(path: Path = FRESH_SET) -> list[dict[str, Any]]:
    """The fresh set (``extract_fresh.py``): scored only, never split, never read for tuning."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def _family(kind: str) -> str:
    return FAMILY.get(kind, kind)


def score_exact(samples: Iterable[dict[str, Any]]) -> dict[str, Counter[str]]:
    """True positives, false positives and false negatives per kind, by exact kind and text."""
    guard, context = PIIGuard(), GuardContext()
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in PII_KINDS}
    for sample in samples:
        findings = guard.check(sample["text"], context).findings
        found = Counter((f.kind, sample["text"][f.start : f.end]) for f in findings)
        expected = Counter((item["kind"], item["value"]) for item in sample["expected"])
        for label, difference in (("tp", found & expected), ("fp", found - expected), ("fn", expected - found)):
            for (kind, _), n in difference.items():
                counts[kind][label] += n
                if label != "fp":
                    counts[kind]["support"] += n
                    counts[kind]["support_in"] += n
                    counts[kind]["tp_in" if label == "tp" else "fn_in"] += n
    counts["overall"] = sum(counts.values(), Counter())
    return counts


def _match_overlap(sample: dict[str, Any], findings: Iterable[Finding]) -> tuple[list[Finding], list[bool]]:
    """The false-positive findings of one sample, and for each labelled item whether a finding matched it."""
    items = sample["expected"]
    matched = [False] * len(items)
    false_positives: list[Finding] = []
    labelled_kinds = sample.get("labelled_kinds")
    for finding in findings:
        if labelled_kinds is not None and _family(finding.kind) not in labelled_kinds:
            continue  # the source labelled other kinds only: it says nothing of this one
        hits = [i for i, it in enumerate(items) if it["start"] < finding.end and finding.start < it["end"]]
        if any(items[i]["kind"] is None for i in hits):
            continue  # on a span of a kind Keel does not detect
        same = [i for i in hits if items[i]["kind"] == _family(finding.kind)]
        if not same:
            false_positives.append(finding)
        elif not all(matched[i] for i in same):
            matched[next(i for i in same if not matched[i])] = True
    return false_positives, matched


def score_overlap(samples: Iterable[dict[str, Any]], guard: PIIGuard | None = None) -> dict[str, Counter[str]]:
    """Counts per labelled kind by overlapping spans; ``*_in`` counters cover items inside the documented scope."""
    guard = guard or PIIGuard()
    context = GuardContext()
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in PII_KINDS if kind != "high_entropy"}
    for sample in samples:
        false_positives, matched = _match_overlap(sample, guard.check(sample["text"], context).findings)
        for finding in false_positives:
            counts[_family(finding.kind)]["fp"] += 1
        for item, was_matched in zip(sample["expected"], matched, strict=True):
            if item["kind"] is None:
                continue
            c = counts[item["kind"]]
            c["support"] += 1
            c["tp" if was_matched else "fn"] += 1
            if item["in_scope"]:
                c["support_in"] += 1
                c["tp_in" if was_matched else "fn_in"] += 1
    counts["overall"] = sum(counts.values(), Counter())
    return counts


def mistakes(samples: Iterable[dict[str, Any]], guard: PIIGuard | None = None) -> Iterator[str]:
    """One line per false positive and per missed item (in scope or not), for reading the tune split."""
    guard = guard or PIIGuard()
    for sample in samples:
        text = sample["text"]
        false_positives, matched = _match_overlap(sample, guard.find(text))
        for finding in false_positives:
            yield f"FP {finding.kind:<13} {text[finding.start : finding.end]!r} in {text[:120]!r}"
        for item, was_matched in zip(sample["expected"], matched, strict=True):
            if item["kind"] is not None and not was_matched:
                scope = "in scope" if item["in_scope"] else f"out of scope: {item.get('scope_note')}"
                yield f"FN {item['kind']:<13} {item['value']!r} ({scope}) in {text[:120]!r}"


def rates(c: Counter[str]) -> dict[str, float]:
    """Precision, raw recall, in-scope recall and F1 (of precision and in-scope recall)."""
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    recall_in = c["tp_in"] / (c["tp_in"] + c["fn_in"]) if c["tp_in"] + c["fn_in"] else 1.0
    f1 = 2 * precision * recall_in / (precision + recall_in) if precision + recall_in else 0.0
    return {"precision": precision, "recall_raw": recall, "recall_in_scope": recall_in, "f1": f1}


def table(counts: dict[str, Counter[str]]) -> list[str]:
    """One printable row per kind, then overall."""
    rows = [
        f"{'kind':<14}{'support':>8}{'in scope':>9}{'tp':>6}{'fp':>5}{'fn':>5}"
        f"{'precision':>11}{'recall raw':>12}{'in scope':>10}{'F1':>7}"
    ]
    for kind, c in counts.items():
        r = rates(c)
        rows.append(
            f"{kind:<14}{c['support']:>8}{c['support_in']:>9}{c['tp']:>6}{c['fp']:>5}{c['fn']:>5}"
            f"{r['precision']:>11.3f}{r['recall_raw']:>12.3f}{r['recall_in_scope']:>10.3f}{r['f1']:>7.3f}"
        )
    return rows
