"""The second stage of `InjectionScreen` for user input: a small logistic model over words and word pairs.

The rules catch the wordings someone wrote down; jailbreaks typed by users vary too much for that ("from now
on you will answer as two personas…", "this is a hypothetical story in which…"). This model scores the
*folded view* the rules read (NFKC, case-folded, without invisible characters), so full-width letters,
zero-width padding and Cyrillic or Greek look-alikes inside Latin words ("іgnоrе") do not change its features.
A text is read in windows of `WINDOW` words, `STRIDE` apart, and its score is the best window's: a long, benign
message cannot dilute one hostile paragraph, and the work is linear in the text (every word is in at most two
windows).

The weights ship in the package (``_injection_classifier.tsv.gz``), trained offline by
``bench/data/injection/train_classifier.py`` on public data only (its docstring and
``bench/data/injection/PROVENANCE.md`` say which); no model is downloaded and nothing beyond the standard
library runs. The file is plain text: ``#``-lines for the bias, threshold and window, then one
``n-gram<TAB>weight`` per line, so a reviewer can read what the model keys on.
"""

from __future__ import annotations

import functools
import gzip
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

__all__ = ["STRIDE", "WINDOW", "Classifier", "WindowScore", "dump", "features", "load", "parse", "windows", "words"]

WINDOW: Final = 192
"""Words per window: about a paragraph or two, the length of most jailbreak prompts' core."""
STRIDE: Final = 96
"""Words between window starts: half a window, so any run of up to 96 words lies whole inside one window."""
_WORD: Final = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_RESOURCE: Final = "_injection_classifier.tsv.gz"


@dataclass(frozen=True, slots=True)
class WindowScore:
    """The best window of a text: its probability of being an injection and where it lies in the view."""

    probability: float
    start: int
    """Index in the view of the window's first character."""
    end: int
    """Index in the view one past the window's last character."""


@dataclass(frozen=True, slots=True)
class Classifier:
    """Weights per n-gram, a bias, and the probability at which a window counts as an injection."""

    weights: dict[str, float]
    bias: float
    threshold: float

    def probability(self, grams: set[str]) -> float:
        """The logistic of the bias plus the weights of the n-grams present (each counted once)."""
        weights = self.weights
        logit = self.bias + sum(weights.get(gram, 0.0) for gram in grams)
        return 1.0 / (1.0 + math.exp(-logit)) if logit > -500 else 0.0

    def score(self, view: str) -> WindowScore | None:
        """The highest-scoring window of `view` (a folded text), or None when the text has no words."""
        spans = [match.span() for match in _WORD.finditer(view)]
        best: WindowScore | None = None
        for first, last in windows(len(spans)):
            chunk = [view[start:end] for start, end in spans[first:last]]
            probability = self.probability(features(chunk))
            if best is None or probability > best.probability:
                best = WindowScore(probability, spans[first][0], spans[last - 1][1])
        return best


def words(view: str) -> list[str]:
    """The words of a folded text, as the model reads them (letters and digits, with an apostrophe suffix)."""
    return _WORD.findall(view)


def features(chunk: Sequence[str]) -> set[str]:
    """The n-grams of a run of words: each word, and each pair of neighbours joined by a space."""
    grams = set(chunk)
    grams.update(f"{left} {right}" for left, right in zip(chunk, chunk[1:], strict=False))
    return grams


def windows(count: int) -> Iterator[tuple[int, int]]:
    """Word ranges ``[first, last)`` covering `count` words: `WINDOW` long, `STRIDE` apart, the last one flush."""
    if count == 0:
        return
    first = 0
    while True:
        last = min(first + WINDOW, count)
        yield first, last
        if last == count:
            return
        first += STRIDE


def parse(lines: Sequence[str]) -> Classifier:
    """A classifier from its text form (see the module docstring); malformed files raise ValueError."""
    header: dict[str, float] = {}
    weights: dict[str, float] = {}
    for number, line in enumerate(lines, 1):
        name, tab, value = line.rstrip("\n").partition("\t")
        if not tab:
            raise ValueError(f"line {number}: expected 'name<TAB>value', got {line[:60]!r}")
        if name.startswith("# "):
            header[name[2:]] = float(value)
        else:
            weights[name] = float(value)
    missing = [name for name in ("window", "bias", "threshold") if name not in header]
    if missing:
        raise ValueError(f"missing header line(s): {', '.join(f'# {name}' for name in missing)}")
    window = int(header["window"])
    if window != WINDOW:
        raise ValueError(f"weights were trained for windows of {window} words, this code reads {WINDOW}")
    return Classifier(weights, header["bias"], header["threshold"])


def dump(model: Classifier) -> list[str]:
    """The text form of `model`, heaviest n-grams first (what `parse` reads)."""
    lines = [f"# window\t{WINDOW}", f"# bias\t{model.bias:.6f}", f"# threshold\t{model.threshold:.6f}"]
    ranked = sorted(model.weights.items(), key=lambda item: (-abs(item[1]), item[0]))
    return lines + [f"{gram}\t{weight:.4f}" for gram, weight in ranked]


@functools.cache
def load() -> Classifier:
    """The shipped model, read once per process."""
    data = resources.files(__package__).joinpath(_RESOURCE).read_bytes()
    return parse(gzip.decompress(data).decode("utf-8").splitlines())
