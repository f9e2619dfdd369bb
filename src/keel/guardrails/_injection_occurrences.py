"""Where the phrase rules' keys occur in one text, found once and shared by every rule, and the rules' matches.

A keyword-dense megabyte (support tickets and pages that say "assistant", "reply", "your message" every other
line) holds thousands of occurrences of hundreds of distinct keys. Searching the text once per key and rule
took longer than the rules themselves, so `Occurrences` cuts the text into words once (one ``re`` pass and a
dictionary) and answers every key that is a whole word, or the start of one, from there; only the few keys that
may start inside a word or with punctuation are searched for. Each key is looked up once per text, however many
rules need it.

`matches` then runs a rule only where its keys are (`keel.guardrails._injection_prefilter.Needed`): a rule whose
matches start at most a few characters before a key of its anchor set is tried at exactly those starts, so a
megabyte costs it one attempt per occurrence; the others are read in windows around their first key set that
hold a key of each of their other sets. Both stay linear on hostile input: each start is tried once, and windows
that overlap are merged, so a text that is one key repeated is read once per rule.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import accumulate, chain, islice
from typing import Final

from keel.guardrails._injection_prefilter import REACH, Key, Needed

__all__ = ["Occurrences", "matches", "windows"]

_TOKENS: Final = re.compile(r"\w+|\W+")
_WORD: Final = re.compile(r"\w+")


class Occurrences:
    """The start of every occurrence of the keys asked for, in one view; each key is found once."""

    def __init__(self, view: str) -> None:
        self.view = view
        self._keys: dict[Key, list[int]] = {}
        self._sets: dict[frozenset[Key], list[int]] = {}
        self._words: dict[str, list[int]] | None = None
        self._vocabulary: list[str] | None = None

    def of(self, keys: frozenset[Key]) -> list[int]:
        """Where any of `keys` starts, sorted, each position once."""
        found = self._sets.get(keys)
        if found is None:
            found = self._sets[keys] = sorted(set(chain.from_iterable(map(self.key, keys))))
        return found

    def key(self, key: Key) -> list[int]:
        """Where `key` starts with what it requires on either side (no word character before or after)."""
        found = self._keys.get(key)
        if found is None:
            found = self._keys[key] = self._find(key)
        return found

    def _find(self, key: Key) -> list[int]:
        stem = _WORD.match(key.text)
        if not key.word_start or stem is None or stem.end() < 2:
            return [match.start() for match in _finder(key).finditer(self.view)]
        words = self._words if self._words is not None else self._index()
        if stem.end() < len(key.text):  # a whole word, then a character that is not part of one
            view, end = self.view, len(key.text)
            return [
                start
                for start in words.get(stem.group(), ())
                if view.startswith(key.text, start) and not (key.word_end and _word_at(view, start + end))
            ]
        if key.word_end:
            return words.get(key.text, [])
        return sorted(chain.from_iterable(words[word] for word in self._starting_with(key.text)))

    def _index(self) -> dict[str, list[int]]:
        """Every word of the view and where it starts: the view alternates runs of word and other characters."""
        tokens = _TOKENS.findall(self.view)
        first = 0 if tokens and _WORD.match(tokens[0]) else 1
        words: defaultdict[str, list[int]] = defaultdict(list)
        starts = accumulate(map(len, tokens), initial=0)
        for word, start in zip(islice(tokens, first, None, 2), islice(starts, first, None, 2), strict=False):
            words[word].append(start)
        self._words = dict(words)
        return self._words

    def _starting_with(self, stem: str) -> list[str]:
        if self._vocabulary is None:
            self._vocabulary = sorted(self._words or ())
        vocabulary = self._vocabulary
        return vocabulary[bisect.bisect_left(vocabulary, stem) : bisect.bisect_left(vocabulary, stem + "\U0010ffff")]


def _word_at(view: str, index: int) -> bool:
    return index < len(view) and (view[index].isalnum() or view[index] == "_")


@functools.lru_cache(maxsize=1024)
def _finder(key: Key) -> re.Pattern[str]:
    """A search for `key` and its conditions; a key that can overlap itself (``_of_`` in ``_of_of_``) by lookahead."""
    text = re.escape(key.text)
    after = r"(?!\w)" if key.word_end else ""
    if any(key.text[:size] == key.text[-size:] for size in range(1, len(key.text))):
        return re.compile((r"(?<!\w)" if key.word_start else "") + f"(?={text}{after})")
    # The literal first, so that ``re`` looks for it at C speed; the look-behind then checks what precedes it.
    return re.compile(text + (rf"(?<!\w{text})" if key.word_start else "") + after)


def matches(pattern: re.Pattern[str], needed: Needed | None, found: Occurrences) -> Iterator[re.Match[str]]:
    """The matches of `pattern` in `found.view` (as ``finditer`` finds them), read only around `needed`'s keys."""
    view = found.view
    if needed is None:
        yield from pattern.finditer(view)
    elif needed.anchor is not None:
        yield from _anchored(pattern, found.of(needed.anchor), needed.lead, view)
    else:
        first, *others = needed.sets
        for start, end in windows(found, first, others):
            yield from pattern.finditer(view, start, end)


def _anchored(pattern: re.Pattern[str], keys: list[int], lead: int, view: str) -> Iterator[re.Match[str]]:
    """Every match starts at most `lead` characters before one of `keys`: try each such start once, in order."""
    match = pattern.match
    untried = 0  # starts before this were tried, or lie inside a match already found
    for key in keys:
        start = max(key - lead, untried)
        while start <= key:
            found = match(view, start)
            if found is None:
                start += 1
                continue
            yield found
            start = max(found.end(), start + 1)
        untried = max(untried, start)


def windows(
    found: Occurrences, first: frozenset[Key], others: Sequence[frozenset[Key]] = (), reach: int = REACH
) -> list[tuple[int, int]]:
    """The disjoint spans within `reach` characters of a key of `first` that also hold a key of each of `others`."""
    size = len(found.view)
    longest = max(len(key.text) for key in first)
    required = [found.of(keys) for keys in others]
    merged: list[tuple[int, int]] = []
    for position in found.of(first):
        start, end = max(position - reach, 0), min(position + longest + reach, size)
        if not all(_within(starts, start, end) for starts in required):
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _within(starts: list[int], start: int, end: int) -> bool:
    index = bisect.bisect_left(starts, start)
    return index < len(starts) and starts[index] < end
