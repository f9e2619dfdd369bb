"""PIIGuard: precision, recall and F1 per kind on the labelled set, and throughput on a 2 KB support reply.

Quality: every sample of ``tests/data/pii_samples.json`` is checked by ``PIIGuard()`` (all kinds); a finding
counts as a true positive when its kind and exact text match a labelled item of that sample, a false
positive otherwise; a labelled item no finding matches is a false negative. The set was written together
with the detectors, so its figures are a regression floor, not an estimate of quality on unseen text. The
closest thing to one: the 45 samples of its second block (23 labelled items), written after the detectors
were tuned on the first 166, scored precision 0.83 and recall 0.83 on their first run (4 misses, 4 false
positives; the fixes are in and those samples now pass).

Throughput: ``check`` on 2 KB texts: a customer-support reply with seven PII items among near-misses (order
and tracking numbers, dates, amounts, versions); the same length of clean prose; and an order table whose
every line has a phone number, an id, a date and an amount (the worst case for the phone matcher). Then the
time each detector takes on the reply, to show where the time goes.

    .venv/bin/python bench/pii_guard.py [--seconds 2] [--json]
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

from keel.guardrails import GuardContext
from keel.guardrails._pii_detectors import DETECTORS
from keel.guardrails.pii import PII_KINDS, PIIGuard

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


def score(samples: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """True positives, false positives and false negatives per kind, plus "overall"."""
    guard, context = PIIGuard(), GuardContext()
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in PII_KINDS}
    for sample in samples:
        findings = guard.check(sample["text"], context).findings
        found = Counter((f.kind, sample["text"][f.start : f.end]) for f in findings)
        expected = Counter((item["kind"], item["value"]) for item in sample["expected"])
        for label, difference in (("tp", found & expected), ("fp", found - expected), ("fn", expected - found)):
            for (kind, _), n in difference.items():
                counts[kind][label] += n
    counts["overall"] = sum(counts.values(), Counter())
    return counts


def rates(c: Counter[str]) -> dict[str, float]:
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per throughput figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()

    samples = json.loads(SAMPLES_PATH.read_text(encoding="utf-8"))
    counts = score(samples)
    summary = {
        "samples": len(samples),
        "negative_samples": sum(1 for s in samples if not s["expected"]),
        "quality": {kind: {"tp": c["tp"], "fp": c["fp"], "fn": c["fn"], **rates(c)} for kind, c in counts.items()},
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
    print(f"Labelled set: {summary['samples']} samples, {summary['negative_samples']} without PII\n")
    print(f"{'kind':<14}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}{'F1':>7}")
    for kind, row in summary["quality"].items():
        print(
            f"{kind:<14}{row['tp']:>5}{row['fp']:>5}{row['fn']:>5}"
            f"{row['precision']:>11.3f}{row['recall']:>8.3f}{row['f1']:>7.3f}"
        )
    t = summary["throughput"]
    print(f"\nThroughput (one thread, {summary['machine']['cpu']}, Python {summary['versions']['python']}):")
    for label, rate in t["checks_per_s"].items():
        print(f"  {label:<15} {t['text_chars']} chars: {rate:7.0f} checks/s  ({1e6 / rate:5.0f} µs/check)")
    print("  per detector on the text with PII (µs): " + ", ".join(f"{k} {v:.0f}" for k, v in t["detector_us"].items()))


if __name__ == "__main__":
    main()
