"""PIIGuard: precision and recall per kind on public data (tune and holdout) and on the in-repo set; throughput.

Public set (``bench/data/pii/external.jsonl``; ``bench/data/pii/PROVENANCE.md`` names the repository, path,
commit and license of every source): 4,389 texts from the test data of microsoft/presidio, microsoft/presidio-
research, Yelp/detect-secrets and gitleaks/gitleaks (3,013 texts, the whole set until ae1738b) and from the rule
examples of praetorian-inc/noseyparker and mongodb/kingfisher (1,376, added since), with 2,928 labelled items of
kinds Keel detects and 1,757 texts with none (near misses). Split by a hash of the text, fixed before any detector
was changed: ``holdout`` when the first byte of SHA-256 of the UTF-8 text is even, ``tune`` otherwise
(`_pii_scoring.split_of`; the bench refuses a file whose stored split disagrees). Detectors are tuned looking at
``tune`` only (``--misses`` prints its false positives and misses and refuses ``holdout``); ``holdout`` is scored,
never read for tuning, so its figures are the estimate for text nobody here wrote. Its false positives were read
once, after the last detector change, for a label audit recorded in PROVENANCE.md.

What is counted on the public set (`_pii_scoring.score_overlap`): a finding is a true positive when it overlaps
an unmatched labelled item of the same kind (``high_entropy`` findings count as ``secret``), a false positive
when it overlaps no item of its kind; a finding on a span of a kind Keel does not detect (a name, a date), or a
second finding on an item already matched, counts neither way. Recall is over every labelled item ("raw") and
over the items inside Keel's documented scope ("in scope", decided per item by ``bench/data/pii/scope.py``:
docs/guardrails.md, "What PIIGuard detects"). Precision is over every finding.

First run of the widened detectors on the holdout (commit ef88089, before any tuning in this round): precision
0.927, raw recall 0.849, in-scope recall 0.978 (611 true positives, 48 false positives, 109 misses of which 13 in
scope). The old tree (acfc4ab) scored 0.885, 0.629 and 0.713 there.

After this round's tuning (commit 977e61f; secrets only): the tune split's false positives gave stand-ins (AWS's
EXAMPLE keys, counting runs, single-character fills) and mostly-hex digests; variants of its near misses gave
code and file paths assigned to a secret's name, SRI and go.sum digests and public armoured blocks (no tune text
holds a certificate; on the holdout that rule removed 25 of the 26 false positives that went). Holdout: precision
0.965, raw recall 0.849, in-scope recall 0.978 (611 true positives, 22 false positives, 18 of them secret, 109
misses of which 13 in scope). Tune: 0.995, 0.883 and 0.998 (was 0.989, 0.886, 0.998). The tune split's three
remaining false positives read as labelling gaps: a phone in an address line, a UUID npm token, a random key
after ``key =``.

Next round (commits 22f55eb-17b6e9f; secrets only): the two secret scanners' rule examples were added to the set
(new texts fell into both splits by the hash rule); their tune half's false positives gave values saying "fake"
where only the context makes a secret, Ruby ``#{}`` templates, variables behind an escaped dollar sign, CSS
selectors and ARNs assigned to a secret's name, and generated-looking values assigned to a name ending in "id" or
labelled "public key". A rule for letters and digits counting up in turn ("a1b2c3…") was tried and dropped:
Kingfisher labels 40 such tune values secrets. On the set as it now stands, before -> after: tune precision 0.978 ->
0.990, raw recall 0.663 -> 0.660, in-scope recall 0.901 -> 0.899; holdout 0.953 -> 0.954 (962 true positives, 46
false positives, 42 of them secret), raw recall 0.649 -> 0.647, in-scope 0.884 -> 0.883. On the first four sources
alone nothing moved (holdout 0.965, tune 0.995): none of their false positives is of these classes. The scanners'
examples are mostly one vendor key each, many of vendors Keel knows no prefix for, so recall on the whole set is
lower than on the first four sources (in-scope 0.978 there). A label audit of the 46 holdout false positives, done
after the last detector change (PROVENANCE.md), found 14 labelling gaps (a value the source itself calls a secret
elsewhere or in a comment); counting them as correct, holdout precision is 0.968 (first four sources 0.975). The
tune split's ten false positives: the three labelling gaps above, three typed values counting in turn that Nosey
Parker calls negatives, three second keys on a line whose rule labels another (a Square sandbox token, an AWS key
id, a CloudSight secret) and a commented-out Twitter key.

This round (commits f11a38d-dcb5ff2; secrets only, from the tune split's in-scope misses): a typed value counting
up ("abcdef0123456789…") is no stand-in where an assignment or bearer header names it a secret (Kingfisher labels 49
such tune values secrets; high_entropy still leaves counting runs alone), a quoted value runs to its closing quote,
bearer values of 10 characters count (RFC 6750's example has 15), a password of words counts in a line of
configuration (INI, .env, connection strings), and few distinct characters are counted over the whole value. Tune,
before -> after: secret in-scope recall 0.846 -> 0.943 (583 in scope), raw 0.584 -> 0.640, precision 0.986 -> 0.986
(691 true positives, 10 false positives: the gitleaks negative ``dapi123…defg5`` is now found); overall precision
0.990 -> 0.989, raw recall 0.660 -> 0.703, in-scope 0.899 -> 0.962 (first four sources: precision 0.995 -> 0.994,
in-scope 0.998). Holdout, scored once after the last change: secret precision 0.940 -> 0.937 (702 true positives,
47 false positives), raw recall 0.588 -> 0.626, in-scope 0.842 -> 0.904; overall precision 0.954 -> 0.952, raw
recall 0.647 -> 0.675, in-scope 0.883 -> 0.924. Most of the tune split's 33 remaining in-scope secret misses are
one finding covering two labels (a URL's user and password labelled apart, two scanners' overlapping spans of one
value) or values that say they are fills ("aaaa…", "FakeValues…", "######").

In-repo set (``tests/data/pii_samples.json``, `_pii_scoring.score_exact`): a finding counts when its kind and
exact text match a labelled item. That set was written together with the detectors: a regression floor, not an
estimate of quality on unseen text.

Fresh set (``bench/data/pii/fresh.jsonl``, ``--fresh``; PROVENANCE.md, "Fresh set (never tuned on)"): texts from
the tests of secretlint/secretlint, sirwart/ripsecrets and Skyscanner/whispers, none in the public set, labelling
secrets only. It is never read for tuning: ``--fresh`` prints its per-kind counts and a summary, no text and no
mistake, and ``--misses`` refuses it as it refuses the holdout.

Throughput: ``check`` on 2 KB texts: a customer-support reply with seven PII items among near-misses (order
and tracking numbers, dates, amounts, versions); the same length of clean prose; and an order table whose
every line has a phone number, an id, a date and an amount (the worst case for the phone matcher). Then the
time each detector takes on the reply, to show where the time goes.

    .venv/bin/python bench/pii_guard.py [--seconds 2] [--json] [--misses tune] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _machine import cpu_model, version
from _pii_scoring import SPLITS, fresh_samples, mistakes, public_samples, rates, score_exact, score_overlap, table

from keel.guardrails import GuardContext
from keel.guardrails._pii_detectors import DETECTORS
from keel.guardrails.pii import PIIGuard

SAMPLES_PATH = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii_samples.json"

REPLY_WITH_PII = (
    "Hi Maria, thanks for getting back to us about order A-1002 and the return R-0001. I can see the parcel "
    "(tracking JD014600006281234567) left our depot on 2024-03-15 and the refund of $1,234.56 was issued the "
    "same day. Your account lists the email maria.garcia@example.com and the phone (415) 555-0132; the card "
    "ending 4242 was charged, which is the Visa 4242 4242 4242 4242 you asked about. If you would rather "
    "receive the refund by transfer, please confirm the IBAN DE89 3704 0044 0532 0130 00 is still correct. "
    "For security we noticed a sign-in from 203.0.113.42 on version 2.14.0 of the app; if that was not you, "
    "reset your password from the settings page. Our engineers also asked me to pass on that the API key "
    "sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY you pasted in chat has been revoked, so please generate a new "
    "one rather than reuse it. The invoice INV-2024-0042 and the quote Q-2024-118 remain valid for 30 days. "
    "Our warehouse team confirmed that the replacement mug (SKU MUG-0042-BLU) ships with the next batch, "
    "which is scheduled for 03/22/2024 between 9:00 and 17:00. The shipping fee of $4.99 has been waived. "
    "If anything else comes up, you can reply to this message or call our support line at +1-212-555-0147 "
    "from Monday to Friday. Please have your case number 00482913 ready so we can find your history quickly. "
    "We have also noted your preference for email updates rather than text messages, and we will keep you "
    "informed at every step. Our records show the account was opened in 2019 and has 14 orders, the last "
    "one for 3 items at a total of $89.70 including tax. Thank you for your patience, and have a great day! "
    "Best regards, Sam from the Keel support desk (ticket #88213, build 10.0.19045.3803, region eu-west-1). "
    "P.S. The loyalty programme renews on 2024-12-01; your current tier gives 5% off orders above $50.00, and "
    "the survey link we will send after this conversation takes about two minutes to complete. Thanks again! "
    "One last thing: the replacement lid you asked about on 2024-03-18 is part R-0002 and costs $6.50 plus tax."
)
CLEAN_REPLY = (
    "Hi Maria, thanks for getting back to us about your recent order and the return you started last week. "
    "The parcel left our depot on the fifteenth and the refund was issued the same day, so you should see it "
    "on your statement within five working days depending on your bank. " * 8
)[: len(REPLY_WITH_PII)]
# The worst case for the phone matcher: every line holds number-like candidates it has to parse.
ORDER_TABLE = "\n".join(
    f"A-{1000 + i}, 2024-03-{10 + i % 20:02d}, ${i * 13.37:.2f}, qty {i % 7}, 415-555-{100 + i:04d}" for i in range(60)
)[: len(REPLY_WITH_PII)]


def checks_per_second(text: str, seconds: float) -> float:
    guard, context = PIIGuard(), GuardContext()
    for _ in range(20):
        guard.check(text, context)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            guard.check(text, context)
        count += 50
    return count / elapsed


def detector_microseconds(text: str, repeats: int = 300) -> dict[str, float]:
    timings: dict[str, float] = {}
    for kind, detector in DETECTORS.items():
        start = time.perf_counter()
        for _ in range(repeats):
            list(detector(text))
        timings[kind] = (time.perf_counter() - start) / repeats * 1e6
    return timings


def _quality(counts: dict[str, Counter[str]]) -> dict[str, dict[str, float]]:
    keys = ("support", "support_in", "tp", "fp", "fn", "tp_in", "fn_in")
    return {kind: {**{k: c[k] for k in keys}, **rates(c)} for kind, c in counts.items()}


def by_source(samples: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Overall counts per source repository, in the order the sources first appear."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        grouped.setdefault(sample["source"].split(":", 1)[0], []).append(sample)
    return {source: score_overlap(group)["overall"] for source, group in grouped.items()}


def print_fresh(as_json: bool) -> None:
    """The fresh set's per-kind table and a one-line summary: counts only, so no text of it is ever shown."""
    samples = fresh_samples()
    counts = score_overlap(samples)
    if as_json:
        json.dump({"texts": len(samples), "quality": _quality(counts)}, sys.stdout, indent=2)
        print()
        return
    positives = sum(1 for s in samples if s["expected"])
    print(f"Fresh set ({len(samples)} texts, {positives} with a secret; PROVENANCE.md, never tuned on):")
    print("\n".join(table(counts)))
    overall, r = counts["overall"], rates(counts["overall"])
    print(
        f"fresh: precision {r['precision']:.3f}, recall raw {r['recall_raw']:.3f}, in scope {r['recall_in_scope']:.3f}"
        f" ({overall['tp']} tp, {overall['fp']} fp, {overall['fn']} fn of which {overall['fn_in']} in scope)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per throughput figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--misses", choices=("tune",), help="print the tune split's false positives and misses (never the holdout's)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="score the fresh set only (never tuned on; prints no text of it)"
    )
    args = parser.parse_args()
    if args.fresh:
        print_fresh(as_json=args.json)
        return
    if args.misses:
        for line in mistakes(public_samples("tune")):
            print(line)
        return

    public = {split: list(public_samples(split)) for split in SPLITS}
    in_repo = json.loads(SAMPLES_PATH.read_text(encoding="utf-8"))
    public_counts = {split: score_overlap(samples) for split, samples in public.items()}
    in_repo_counts = score_exact(in_repo)
    summary = {
        "public": {split: {"texts": len(public[split]), "quality": _quality(public_counts[split])} for split in SPLITS},
        "in_repo": {
            "samples": len(in_repo),
            "negative_samples": sum(1 for s in in_repo if not s["expected"]),
            "quality": _quality(in_repo_counts),
        },
        "throughput": {
            "text_chars": len(REPLY_WITH_PII),
            "checks_per_s": {
                "reply with PII": checks_per_second(REPLY_WITH_PII, args.seconds),
                "clean prose": checks_per_second(CLEAN_REPLY, args.seconds),
                "order table": checks_per_second(ORDER_TABLE, args.seconds),
            },
            "detector_us": detector_microseconds(REPLY_WITH_PII),
        },
        "versions": {
            "python": platform.python_version(),
            "phonenumbers": version("phonenumbers"),
            "python-stdnum": version("python-stdnum"),
        },
        "machine": {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "platform": platform.platform()},
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return
    for split in SPLITS:
        print(f"Public set, {split} ({len(public[split])} texts; bench/data/pii/PROVENANCE.md):")
        print("\n".join(table(public_counts[split])), end="\n\n")
    print("By source (overall rows; the secret scanners' texts label secrets only):")
    print(f"  {'source':<28}{'split':<9}" + table({})[0][len("kind") + 10 :])
    for split in SPLITS:
        for source, counts in by_source(public[split]).items():
            print(f"  {source:<28}{split:<9}" + table({"": counts})[1][14:])
    print()
    print(f"In-repo set ({len(in_repo)} samples, {summary['in_repo']['negative_samples']} without PII; exact match):")
    print("\n".join(table(in_repo_counts)))
    t = summary["throughput"]
    print(f"\nThroughput (one thread, {summary['machine']['cpu']}, Python {summary['versions']['python']}):")
    for label, rate in t["checks_per_s"].items():
        print(f"  {label:<15} {t['text_chars']} chars: {rate:7.0f} checks/s  ({1e6 / rate:5.0f} µs/check)")
    print("  per detector on the text with PII (µs): " + ", ".join(f"{k} {v:.0f}" for k, v in t["detector_us"].items()))


if __name__ == "__main__":
    main()
