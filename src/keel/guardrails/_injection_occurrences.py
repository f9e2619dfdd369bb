"""Where the phrase rules' keys occur in one text, found once and shared by every rule, and the rules' matches.

A keyword-dense megabyte (support tickets and pages that say "assistant", "reply", "your message" every other
line) holds thousands of occurrences of hundreds of distinct keys. Searching the text once per key and rule
took longer than the rules themselves, so `Occurrences` cuts the text into words once (one ``re`` pass and a
dictionary) and answers every key that is a whole word, or the start of one, from there; only the few keys that
may start inside a word or with punctuation are searched for. Each key is looked up once per text, however many
rules need it.

`matches` then runs a rule only where its keys are (`keel.guardrails._injection_prefilter.Needed`). A rule
none of whose necessary literals is missing is tried at the starts its anchor keys allow: the key itself, or the
few characters before it that the pattern can match there (read backwards from the key), by ``map`` in C, so a
megabyte costs a rule about one try per occurrence of its rarest near key. A rule ``a|b|…`` whose anchor keys
are dense is tried at the starts of the alternatives that can match at all, when that is much cheaper. The
results are exactly ``finditer``'s: a try that starts inside a match already found is dropped.

It stays linear on hostile input: each start is tried once, and a rule whose keys are so dense that nearly
every start would be tried is left to ``re``'s own scan of the text (one pass). A rule without an anchor would
be read in merged windows around its keys.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain, compress, repeat
from operator import not_, sub
from typing import Final, NamedTuple

from keel.guardrails._injection_prefilter import REACH, Key, Needed

__all__ = ["Occurrences", "Vocabulary", "matches", "windows"]

_TOKENS: Final = re.compile(r"\w+|\W+")
_WORD: Final = re.compile(r"\w+")
_DENSE: Final = 3  # past one start per this many characters, re's own scan (finditer) is cheaper than tries
_DENSE_KEYS: Final = 32  # the same for keys to look back from, per character
_SPLIT: Final = 256  # a rule with fewer tries per character than this is not worth splitting into alternatives


class Vocabulary(NamedTuple):
    """The words `Occurrences` indexes: those of some keys, whole or as prefixes (the rest of a text is skipped)."""

    words: frozenset[str]
    prefixes: frozenset[str]

    @classmethod
    def of(cls, keys: Iterable[Key]) -> Vocabulary:
        stems = [(stem.group(), key) for key in keys if (stem := _stem(key)) is not None]
        whole = frozenset(stem for stem, key in stems if key.word_end or len(stem) < len(key.text))
        return cls(whole, frozenset(stem for stem, key in stems if stem == key.text and not key.word_end))


class Occurrences:
    """The start of every occurrence of the keys asked for, in one view; each key is found once.

    `vocabulary`: the word keys that will be asked for, so that the index holds only them; None indexes every word.
    """

    def __init__(self, view: str, vocabulary: Vocabulary | None = None) -> None:
        self.view = view
        self._vocabulary = vocabulary
        self._keys: dict[Key, list[int]] = {}
        self._sets: dict[frozenset[Key], list[int]] = {}
        self._words: dict[str, list[int]] | None = None
        self._sorted: list[str] = []
        self._reversed: str | None = None

    def reversed(self) -> str:
        """The view backwards, for reading what precedes a key with a forward expression."""
        if self._reversed is None:
            self._reversed = self.view[::-1]
        return self._reversed

    def of(self, keys: frozenset[Key]) -> list[int]:
        """Where any of `keys` starts, sorted, each position once."""
        found = self._sets.get(keys)
        if found is None:
            whole, others = _whole_words(keys, self._vocabulary)
            # Whole-word keys straight from the index, by C code: a short text asks for hundreds of absent keys.
            words = self._words if self._words is not None else self._index() if whole else {}
            lists = chain(map(words.get, whole, repeat(())), map(self.key, others))
            found = self._sets[keys] = sorted(set(chain.from_iterable(lists)))
        return found

    def key(self, key: Key) -> list[int]:
        """Where `key` starts with what it requires on either side (no word character before or after)."""
        found = self._keys.get(key)
        if found is None:
            found = self._keys[key] = self._find(key)
        return found

    def present(self, sets: tuple[frozenset[Key], ...]) -> bool:
        """Whether each of `sets` occurs, as far as the word index tells: the other sets cost a search each."""
        return all(map(self.of, _indexed(sets, self._vocabulary)))

    def _find(self, key: Key) -> list[int]:
        how, stem = _plan(key, self._vocabulary)
        if how is _SEARCH:
            return [match.start() for match in _finder(key).finditer(self.view)]
        words = self._words if self._words is not None else self._index()
        if how is _WORD_THEN:  # a whole word, then a character that is not part of one
            view, end = self.view, len(key.text)
            return [
                start
                for start in words.get(stem, ())
                if view.startswith(key.text, start) and not (key.word_end and _word_at(view, start + end))
            ]
        if how is _WHOLE:
            return words.get(stem, [])
        return sorted(chain.from_iterable(words.get(word, ()) for word in _starting_with(self._sorted, stem)))

    def _index(self) -> dict[str, list[int]]:
        """Where each word starts (the view alternates runs of word and other characters), for the wanted words."""
        tokens = _TOKENS.findall(self.view)
        first = 0 if tokens and _WORD.match(tokens[0]) else 1
        words = tokens[first::2]
        starts = list(accumulate(map(len, tokens), initial=0))[first::2]
        present = set(words)
        self._sorted = sorted(present)
        pairs: Iterable[tuple[str, int]] = zip(words, starts, strict=False)
        if self._vocabulary is not None:
            # Only the words of keys are indexed: the others are dropped by C code, not looked at one by one.
            wanted = self._vocabulary.words & present
            wanted |= {word for prefix in self._vocabulary.prefixes for word in _starting_with(self._sorted, prefix)}
            pairs = compress(pairs, map(wanted.__contains__, words))
        index: defaultdict[str, list[int]] = defaultdict(list)
        for word, start in pairs:
            index[word].append(start)
        self._words = dict(index)
        return self._words


_SEARCH, _WORD_THEN, _WHOLE, _PREFIX = "search", "word then", "whole word", "prefix"


@functools.lru_cache(maxsize=4096)
def _plan(key: Key, vocabulary: Vocabulary | None) -> tuple[str, str]:
    """How `key` is found (searched for, or read from the word index as a whole word or a prefix) and its word."""
    stem = _stem(key)
    if stem is None:
        return _SEARCH, ""
    whole = key.word_end or stem.end() < len(key.text)
    if vocabulary is not None and stem.group() not in (vocabulary.words if whole else vocabulary.prefixes):
        return _SEARCH, ""
    return (_WORD_THEN if stem.end() < len(key.text) else _WHOLE if whole else _PREFIX), stem.group()


@functools.lru_cache(maxsize=1024)
def _indexed(sets: tuple[frozenset[Key], ...], vocabulary: Vocabulary | None) -> tuple[frozenset[Key], ...]:
    """The sets all of whose keys the word index answers."""
    return tuple(keys for keys in sets if all(_plan(key, vocabulary)[0] is not _SEARCH for key in keys))


@functools.lru_cache(maxsize=1024)
def _whole_words(keys: frozenset[Key], vocabulary: Vocabulary | None) -> tuple[tuple[str, ...], tuple[Key, ...]]:
    """The words of the keys of `keys` found as whole words in the index, and the other keys."""
    plans = [(key, _plan(key, vocabulary)) for key in keys]
    return tuple(stem for _, (how, stem) in plans if how is _WHOLE), tuple(
        k for k, (how, _) in plans if how is not _WHOLE
    )


def _stem(key: Key) -> re.Match[str] | None:
    """The leading word of a key found through the word index: one that starts a word, of two characters or more."""
    stem = _WORD.match(key.text) if key.word_start else None
    return stem if stem is not None and stem.end() >= 2 else None


def _starting_with(vocabulary: list[str], stem: str) -> list[str]:
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
    elif not found.present(needed.sets):
        return  # a literal every match contains is not in the text
    elif needed.anchor is not None or needed.alternatives:
        yield from _anchored(pattern, needed, found)
    else:
        first, *others = needed.sets
        for start, end in windows(found, first, others):
            yield from pattern.finditer(view, start, end)


def _anchored(pattern: re.Pattern[str], needed: Needed, found: Occurrences) -> Iterator[re.Match[str]]:
    """The matches of a rule whose matches start at most `needed.lead` characters before a key of its anchor set.

    The rule is tried at every such start (of every alternative, for ``a|b|…``), in order, by C code (``map``);
    a try that starts inside a match already found is dropped, so the result is what ``finditer`` finds. When
    nearly every start of the text would be tried, ``finditer`` itself is cheaper.
    """
    view = found.view
    parts = _parts(needed, found)
    starts: list[int] | None = []
    for part in parts:
        assert part.anchor is not None
        keys = found.of(part.anchor)
        if part.lead and len(keys) > len(view) // _DENSE_KEYS:
            starts = None  # each key costs a look at what precedes it; re's own scan costs less
        elif starts is not None:
            more = keys if part.lead == 0 else _starts(keys, part, found, len(view) // _DENSE)
            starts = None if more is None else starts + more if starts else more
        if starts is None:
            break
    if starts is not None and len(parts) > 1:
        starts = sorted(set(starts))
    if starts is not None and len(starts) > len(view) // _DENSE:
        starts = None
    if starts == []:
        return
    hits = pattern.finditer(view) if starts is None else filter(None, map(pattern.match, repeat(view), starts))
    end = 0
    for hit in hits:
        if hit.start() >= end:
            yield hit
            end = hit.end()


def _parts(needed: Needed, found: Occurrences) -> list[Needed]:
    """The whole rule, or its alternatives that can match here when trying those costs less (rarer keys)."""
    whole = _cost(needed, found) if needed.anchor is not None else None
    if not needed.alternatives or (whole is not None and whole <= len(found.view) // _SPLIT):
        return [needed]
    parts = [part for part in needed.alternatives if _cost(part, found) and found.present(part.sets)]
    # Their keys cost look-ups of their own, so the alternatives have to be much cheaper.
    return parts if whole is None or 4 * sum(_cost(part, found) for part in parts) < whole else [needed]


def _cost(needed: Needed, found: Occurrences) -> int:
    """About what the anchor set costs, in tries: one per key, more when the match may start before it."""
    assert needed.anchor is not None
    return len(found.of(needed.anchor)) * (8 if needed.lead else 1)


def _starts(keys: list[int], needed: Needed, found: Occurrences, limit: int) -> list[int] | None:
    """Where a match can start, each once and in order; None once there are more than `limit`.

    That is within `needed.lead` characters before a key, and within the run of characters `needed.before`
    accepts that ends at the key (read backwards, from the reversed view). Most keys are preceded by none of
    them: those are sorted out by C code, and only the others are looked at one by one.
    """
    lead, one, view = needed.lead, needed.before, found.view
    if one is None:
        plain, extended = [], keys
    else:
        preceded = list(map(one.match, repeat(view), map(sub, keys, repeat(1)), keys))
        plain, extended = list(compress(keys, map(not_, preceded))), list(compress(keys, preceded))
    run, size = (_run(one), len(view)) if one is not None else (None, 0)
    backwards = found.reversed() if extended and run is not None else ""
    starts: list[int] = []
    untried = 0
    for key in extended:
        start = max(key - lead, untried)
        if run is not None and (stretch := run.match(backwards, size - key, size - start)):
            start = key - (stretch.end() - stretch.start())
        starts.extend(range(start, key + 1))
        untried = key + 1
        if len(starts) > limit:
            return None
    return sorted(set(starts).union(plain)) if plain and starts else plain or starts


@functools.lru_cache(maxsize=256)
def _run(one: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(f"(?:{one.pattern})*+", one.flags)


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
