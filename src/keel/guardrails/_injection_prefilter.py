"""Which parts of a text each phrase rule has to read: the rule's key words, and windows around them.

Running ~50 regular expressions over every character of a megabyte of tool output takes seconds in Python's
``re``; almost all of that text cannot match. Every match of a rule contains at least one of a few literal
strings (``ignore``, ``disregard``, … for the override rule); `keys` finds them from the compiled pattern's
syntax tree, so a rule edited later keeps a correct key set without anyone maintaining one by hand. `windows`
then finds the keys with ``str.find`` (C speed) and the rule runs only within `REACH` characters around them,
and only in windows that also hold one literal of each of the rule's other necessary sets ("ignore" *and*
"instructions").

A rule without usable keys (``None``) runs over the whole text; `tests/test_guardrails_injection_throughput.py`
asserts that no shipped rule is one. The cost of the windows is one bounded pass per key however often it
occurs: around a key that occurs densely the windows merge into one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from re import _constants as codes  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, Final, NamedTuple

__all__ = ["REACH", "Key", "keys", "matches", "windows"]

REACH: Final = 300
"""How far a match may extend on either side of its key: the longest match on the public sets spans 117
characters. A phrase padded wider than this (hundreds of spaces between its words) is not matched; the defences
that do not depend on detection still hold (docs/guardrails.md, "Security model")."""
_MIN_KEY: Final = 2  # a key of one character would select most of any text
_MAX_SETS: Final = 4  # the checks after the first set are cheap, but each costs a find per key per window
# Words that occur in almost any prose: a key set made only of them selects most of a text, so any other
# necessary literal is preferred, however short.
_COMMON: Final = frozenset(
    "a ai all an and any are as at be but by for from has have i if in is it me my no not now of on or so that the"
    " this to was we what when will with you your".split()
)


class Key(NamedTuple):
    """A literal every match contains; `word_start` when the pattern puts a word boundary right before it."""

    text: str
    word_start: bool


def keys(pattern: re.Pattern[str]) -> tuple[frozenset[Key], ...] | None:
    """Sets of literals every match of `pattern` contains one of *each* (lower-case), best first; or None.

    The first set places the windows; the others must each occur in a window for it to be read.
    """
    found = [s for s in _necessary(_parser.parse(pattern.pattern, pattern.flags), False) if _usable(s)]
    if not found:
        return None
    found.sort(key=_rank, reverse=True)
    return tuple(frozenset(Key(key.text.lower(), key.word_start) for key in s) for s in found[:_MAX_SETS])


def _usable(found: set[Key]) -> bool:
    return min(len(key.text) for key in found) >= _MIN_KEY


def _best(candidates: list[set[Key]]) -> set[Key] | None:
    usable = [found for found in candidates if _usable(found)]
    return max(usable, key=_rank) if usable else None


def _necessary(sequence: Any, boundary: bool) -> list[set[Key]]:
    """Sets of literals of which every match of `sequence` contains at least one member each.

    `boundary`: whether a word boundary is known to precede the sequence.
    """
    candidates: list[set[Key]] = []
    run: list[str] = []
    run_boundary = False
    for op, av in sequence:
        if op is codes.LITERAL:
            if not run:
                run_boundary = boundary
            run.append(chr(av))
            boundary = not chr(av).isalnum() and chr(av) != "_"
            continue
        if run:
            candidates.append({Key("".join(run), run_boundary)})
            run = []
        candidates += _necessary_item(op, av, boundary)
        boundary = _ends_at_boundary(op, av)
    if run:
        candidates.append({Key("".join(run), run_boundary)})
    return candidates


def _ends_at_boundary(op: Any, av: Any) -> bool:
    r"""Whether whatever follows this item starts at a word boundary: after ``\b`` or required whitespace."""
    if op is codes.AT:
        return av is codes.AT_BOUNDARY
    if op in (codes.MAX_REPEAT, codes.MIN_REPEAT, codes.POSSESSIVE_REPEAT) and av[0] >= 1:
        return list(av[2]) in ([(codes.IN, [(codes.CATEGORY, codes.CATEGORY_SPACE)])],)
    return False


def _rank(found: set[Key]) -> tuple[bool, int, int]:
    texts = {key.text for key in found}
    return (not texts <= _COMMON, min(len(text) for text in texts), -len(found))


def _necessary_item(op: Any, av: Any, boundary: bool) -> list[set[Key]]:
    if op is codes.SUBPATTERN:
        return _necessary(av[-1], boundary)
    if op is codes.BRANCH:
        found: set[Key] = set()
        for branch in av[1]:
            part = _best(_necessary(branch, boundary))
            if part is None:
                return []
            found |= part
        return [found]
    if op in (codes.MAX_REPEAT, codes.MIN_REPEAT, codes.POSSESSIVE_REPEAT) and av[0] >= 1:
        return _necessary(av[2], boundary)
    if op is codes.ATOMIC_GROUP:
        return _necessary(av, boundary)
    return []  # character classes, anchors, lookarounds, optional parts: nothing they require


def windows(view: str, words: frozenset[Key], reach: int = REACH) -> list[tuple[int, int]]:
    """The disjoint spans of `view` within `reach` characters of an occurrence of any of `words`."""
    spans: list[tuple[int, int]] = []
    for word in words:
        spans += _spans_of(view, word, reach)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _spans_of(view: str, key: Key, reach: int) -> Iterator[tuple[int, int]]:
    size, length = len(view), len(key.text)
    found = _find(view, key, 0)
    while found >= 0:
        last = found
        # Skip to the last occurrence inside the window: when a key is dense, one search per `reach` characters.
        while (later := view.rfind(key.text, last + 1, min(last + length + reach, size))) >= 0:
            last = later
        yield max(found - reach, 0), min(last + length + reach, size)
        found = _find(view, key, last + 1)


def _find(view: str, key: Key, start: int) -> int:
    """The next occurrence of `key` from `start`; for a word-start key, one not preceded by a word character."""
    found = view.find(key.text, start)
    while found > 0 and key.word_start and (view[found - 1].isalnum() or view[found - 1] == "_"):
        found = view.find(key.text, found + 1)
    return found


def matches(pattern: re.Pattern[str], needed: tuple[frozenset[Key], ...] | None, view: str) -> Iterator[re.Match[str]]:
    """The matches of `pattern` in `view`, reading only windows around the keys in `needed` (all when None)."""
    if needed is None:
        yield from pattern.finditer(view)
        return
    first, *others = needed
    for start, end in windows(view, first):
        if all(any(view.find(key.text, start, end) >= 0 for key in keys) for keys in others):
            yield from pattern.finditer(view, start, end)
