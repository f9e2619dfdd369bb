"""InjectionScreen: detection and false alarms on public data, throughput, and the time on 1 MB hostile pages.

Quality: the sets under ``bench/data/injection/`` (PROVENANCE.md says where every text comes from): attacks
(``direct``: what a user types; ``indirect``: payloads planted in emails, documents, code, JSON, tables, logs and
pages) and benign texts (``user_prompt`` and ``tool_output``). Each text is screened as the pipeline would screen
it: a direct attack or a user prompt with ``origin="input"``, the rest with ``origin="tool_output"``. A text
counts as detected (or as a false alarm) when the verdict is ``block``. The split was fixed by hash before the
rules were tuned: ``tune`` is what the rules were improved on, ``holdout`` was never looked at for tuning, so its
figures are the estimate for text nobody here wrote. ``fresh`` (only with ``--split fresh``) comes from other
projects than both (PurpleLlama's prompt-injection tests, MT-bench and Vicuna-bench questions), was built after
the rules and the classifier were fixed, and is never tuned or trained on: a second, independent estimate.

Two columns: the rules alone (``InjectionScreen(classifier=False)``) and the default screen, whose second stage,
a logistic model of jailbreak wording, scores user input. That model was trained on public data
(``bench/data/injection/train_classifier.py``): the tune split and other texts of the same projects, minus any
text whose word 6-grams are half or more in the holdout. The holdout was not read to train it or to choose its
threshold (chosen by cross-validation on the training data: at most 0.5% of its benign texts flagged). The
shipped weights predate the fresh set; its training data comes from other projects, and the next training also
drops near copies of fresh texts.

Throughput: every text of each split, screened once (texts/s and MB/s per split, and over both); then the
seconds to screen a page of about 1 MB (and of 512 KB, to show that doubling the input doubles the time): the
benign tool outputs of ``tune`` joined and repeated (keyword-dense support text: "assistant", "reply", "your
message" every few lines), and pages built from one hostile fragment repeated (runs of whitespace, unclosed
hidden elements and tags, open comments and image links, Unicode tags, zero-width characters, base64 words,
role words, ...), the inputs that made rules quadratic; last, the benign user prompts of ``tune`` joined and
repeated, screened as user input with both stages and with the rules alone (the classifier's cost). Each page is
timed ``--repeat`` times (default 1) and
the best time kept: the machine may be shared.

    .venv/bin/python bench/injection.py [--json] [--split tune|holdout|fresh] [--no-hostile] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _machine import cpu_model

from keel.guardrails import GuardContext
from keel.guardrails.injection import InjectionScreen

DATA = Path(__file__).resolve().parent / "data" / "injection"
INPUT = GuardContext(origin="input")
TOOL = GuardContext(origin="tool_output")

HOSTILE: dict[str, str] = {
    "unclosed hidden div": '<div style="display:none">',
    "unclosed white text": '<p style="color:white">note ',
    "unclosed tags": "<a href='x' ",
    "open comments": "<!-- note ",
    "open image links": "![x](https://a.example/",
    "image link queries": "![x](https://a.example/p?a=b&",
    "newline runs": "\n",
    "space runs": " \t",
    "punctuation": ".!?:;",
    "tool-call keys": '{"tool": "refund", "name": ',
    "argument keys": '"arguments": {',
    "base64 words": "aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM ",
    "one base64 blob": "QUJD",
    "zero-width alternation": "a\u200b",
    "unicode tags": "\U000e0041",
    "override words": "ignore the previous ",
    "role words": "system: you ",
    "turn lines": "human: hi\n",
    "call words": "call the ",
    "non-ASCII text": "ignorez é ",
    "direction marks": "a\u200e",
}
BENIGN_PAGE = "benign tool outputs (tune)"
SIZES = (512_000, 1_024_000)


def load(split: str) -> list[dict[str, Any]]:
    with (DATA / f"{split}.jsonl").open(encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def context(sample: dict[str, Any]) -> GuardContext:
    return INPUT if sample["kind"] in ("direct", "user_prompt") else TOOL


def quality(samples: list[dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """Per table (attacks by kind, by family, by carrier; benign likewise): name → [rules, both stages, total].

    "rules" is ``InjectionScreen(classifier=False)``; "both stages" the default, whose second stage scores user
    input only (direct attacks and user prompts), so the two columns differ on those rows alone.
    """
    screens = (InjectionScreen(classifier=False), InjectionScreen())
    tables: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for sample in samples:
        flagged = [int(screen.check(sample["text"], context(sample)).action == "block") for screen in screens]
        family = sample["family"]
        rows = [("kind", sample["kind"]), ("family", family)]
        if "_in_" in family:  # planted payloads: also by the payload's source and by the carrier
            payload, carrier = family.split("_in_", 1)
            rows += [("family", f"{payload} (planted, all carriers)"), ("carrier", carrier)]
        for table, name in rows:
            cell = tables[f"{sample['label']}:{table}"][name]
            cell[0] += flagged[0]
            cell[1] += flagged[1]
            cell[2] += 1
    return tables


def throughput(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Every text of `samples` screened once, in the context the pipeline would use."""
    screen = InjectionScreen()
    size = sum(len(s["text"].encode()) for s in samples)
    start = time.perf_counter()
    for sample in samples:
        screen.check(sample["text"], context(sample))
    elapsed = time.perf_counter() - start
    return {
        "texts": len(samples),
        "seconds": elapsed,
        "texts_per_s": len(samples) / elapsed,
        "mb_per_s": size / elapsed / 1e6,
        "mb": size / 1e6,
    }


def combined(rates: dict[str, dict[str, float]]) -> dict[str, float]:
    """The figures over several splits, from each split's."""
    texts, seconds, mb = (sum(rate[key] for rate in rates.values()) for key in ("texts", "seconds", "mb"))
    return {"texts": texts, "texts_per_s": texts / seconds, "mb_per_s": mb / seconds}


def page(unit: str, size: int) -> str:
    """`unit` repeated to `size` bytes of UTF-8 or a little more (cut at `size` characters)."""
    return (unit * (size // len(unit.encode()) + 1))[:size]


def timed(text: str, repeat: int, context: GuardContext = TOOL, screen: InjectionScreen | None = None) -> float:
    screen = screen or InjectionScreen()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        screen.check(text, context)
        best = min(best, time.perf_counter() - start)
    return best


def input_pages(repeat: int) -> dict[str, dict[str, float]]:
    """The benign user prompts of tune, joined and repeated, screened as user input: both stages, then rules alone."""
    joined = "\n\n".join(s["text"] for s in load("tune") if s["label"] == "benign" and s["kind"] == "user_prompt")
    screens = {
        "user input, both stages": InjectionScreen(),
        "user input, rules alone": InjectionScreen(classifier=False),
    }
    return {
        name: {
            f"s_{label}": timed(page(joined, size), repeat, INPUT, screen)
            for label, size in zip(("512kb", "1mb"), SIZES, strict=True)
        }
        for name, screen in screens.items()
    }


def benign_page(repeat: int) -> dict[str, float]:
    """The benign tool outputs of tune, joined by blank lines, repeated to 512 KB and 1 MB."""
    joined = "\n\n".join(s["text"] for s in load("tune") if s["label"] == "benign" and s["kind"] == "tool_output")
    return {
        f"s_{label}": timed(page(joined, size), repeat) for label, size in zip(("512kb", "1mb"), SIZES, strict=True)
    }


def hostile_pages(repeat: int = 1) -> dict[str, dict[str, float]]:
    return {
        name: {
            f"s_{label}": timed(page(fragment, size), repeat)
            for label, size in zip(("512kb", "1mb"), SIZES, strict=True)
        }
        for name, fragment in HOSTILE.items()
    }


def percent(flagged: int, total: int) -> str:
    return f"{flagged:>4}/{total:<4} {100 * flagged / total:5.1f}%" if total else "-"


def print_quality(split: str, tables: dict[str, dict[str, list[int]]]) -> None:
    print(f"\n## {split}: detected attacks (block) and false alarms on benign texts")
    if split == "tune":
        print("(the classifier was trained on tune: its column here is a training figure, not an estimate)")
    for key, title in (
        ("attack:kind", "attacks by kind"),
        ("benign:kind", "false alarms by kind"),
        ("attack:family", "attacks by family"),
        ("attack:carrier", "planted payloads by carrier"),
        ("benign:family", "false alarms by family"),
    ):
        print(f"\n{title:<52} {'rules':>18} {'rules + classifier':>20}")
        for name, (rules, both, total) in sorted(tables.get(key, {}).items()):
            print(f"  {name:<50} {percent(rules, total):>18} {percent(both, total):>20}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--split", choices=("tune", "holdout", "fresh"), help="only this split (default: tune and holdout)"
    )
    parser.add_argument("--no-hostile", action="store_true", help="skip the 1 MB pages (benign and hostile)")
    parser.add_argument("--repeat", type=int, default=1, help="time each 1 MB page this often, keep the best")
    args = parser.parse_args()
    splits = [args.split] if args.split else ["tune", "holdout"]
    samples = {split: load(split) for split in splits}
    by_split = {split: throughput(samples[split]) for split in splits}
    report: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "python": platform.python_version()},
        "quality": {split: quality(samples[split]) for split in splits},
        "throughput": {**combined(by_split), "by_split": by_split},
        "benign_page": {} if args.no_hostile else benign_page(max(args.repeat, 1)),
        "hostile_pages": {} if args.no_hostile else hostile_pages(max(args.repeat, 1)),
        "input_pages": {} if args.no_hostile else input_pages(max(args.repeat, 1)),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return
    print(f"# InjectionScreen on {report['machine']['cpu']}, Python {report['machine']['python']}")
    for split in splits:
        print_quality(split, report["quality"][split])
    rate = report["throughput"]
    print(f"\n## throughput: {rate['texts']} texts, {rate['texts_per_s']:.0f} texts/s, {rate['mb_per_s']:.2f} MB/s")
    for split, cell in rate["by_split"].items():
        print(
            f"  {split:<38} {cell['texts']:>5} texts {cell['texts_per_s']:>7.0f} texts/s {cell['mb_per_s']:>6.2f} MB/s"
        )
    if report["hostile_pages"]:
        print(f"\n## seconds to screen a page (best of {max(args.repeat, 1)})  {'512 KB':>9} {'1 MB':>9}")
        rows = {
            BENIGN_PAGE: report["benign_page"],
            **{f"hostile: {k}": v for k, v in report["hostile_pages"].items()},
            **report["input_pages"],
        }
        for name, cell in rows.items():
            print(f"  {name:<38} {cell['s_512kb']:>8.3f}s {cell['s_1mb']:>8.3f}s")


if __name__ == "__main__":
    main()
