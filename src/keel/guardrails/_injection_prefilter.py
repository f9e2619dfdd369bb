"""Which parts of a text each phrase rule has to read: the literals its matches must contain, found from its syntax.

Running ~50 regular expressions over every character of a megabyte of tool output takes seconds in Python's
``re``; almost all of that text cannot match. Every match of a rule contains at least one of a few literal
strings (``ignore``, ``disregard``, … for the override rule); `keys` finds them from the compiled pattern's
syntax tree, so a rule edited later keeps a correct key set without anyone maintaining one by hand. It also
records what the pattern says around each literal, which makes the literal rarer in real text: a word boundary
(or a space, a line start, a punctuation mark) before it, one after it (``act`` in ``act as`` is not the start
of ``action``), how far at most the match starts before it, and which characters can stand in between.

`keel.guardrails._injection_occurrences` then finds the keys once per text and tries each rule only at the
starts its keys allow (`Needed.anchor`); for ``a|b|…``, each alternative has keys of its own
(`Needed.alternatives`). A rule with no anchor at all would be read in windows of `REACH` characters around its
keys that also hold a key of each of its other necessary sets ("ignore" *and* "instructions").
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from re import _constants as codes  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, Final, NamedTuple

__all__ = ["MAX_LEAD", "REACH", "Key", "Needed", "keys"]

REACH: Final = 300
"""How far before its anchor key a match may start when the pattern allows more (``please\\s+…\\s+act as``), and
how far a match may extend on either side of its keys in a rule read in windows: the longest match on the public
sets spans 117 characters. A phrase padded wider than this (hundreds of spaces between its words) is not matched;
the defences that do not depend on detection still hold (docs/guardrails.md, "Security model")."""
MAX_LEAD: Final = 24
"""The farthest a match may start before a key of its anchor set (``[ \\t]{0,16}`` before ``system:``): the
rule is tried at each of those starts."""
_NARROW: Final = 40  # of the printable ASCII characters: a run of more is most of any text
_PRINTABLE: Final = [code for code in range(32, 127) if not chr(code).isupper()]
_FAR: Final = 1 << 30  # a lead with an unbounded repeat in it
_MIN_KEY: Final = 2  # a key of one character would select most of any text
_MAX_SETS: Final = 4  # the checks after the first set are cheap, but each costs a look-up per window
# Words that occur in almost any prose: a key set made only of them selects most of a text, so any other
# necessary literal is preferred, however short.
_COMMON: Final = frozenset(
    "a ai all an and any are as at be but by for from has have i if in is it me my no not now of on or so that the"
    " this to was we what when will with you your".split()
)
_REPEATS: Final = (codes.MAX_REPEAT, codes.MIN_REPEAT, codes.POSSESSIVE_REPEAT)
_LINE_STARTS: Final = (codes.AT_BEGINNING, codes.AT_BEGINNING_LINE, codes.AT_BEGINNING_STRING, codes.AT_BOUNDARY)
_ENDS: Final = (codes.AT_BOUNDARY, codes.AT_END, codes.AT_END_LINE, codes.AT_END_STRING)


class Key(NamedTuple):
    """A literal every match contains (lower-case), and what the pattern guarantees on either side of it."""

    text: str
    word_start: bool
    """No word character right before it (a ``\\b``, a space or a line start precedes it)."""
    word_end: bool = False
    """No word character right after it."""


@dataclass(frozen=True, slots=True)
class Needed:
    """What a rule's matches must contain; see `keys`."""

    sets: tuple[frozenset[Key], ...]
    """Sets of keys of which every match contains one of *each*, best (rarest in prose) first."""
    anchor: frozenset[Key] | None
    """A set of which every match contains a key at most `lead` characters after its start; None when every
    set can be preceded by an unbounded part of the match (``\\s+``)."""
    lead: int
    """The largest distance from a match's start to the start of its key of `anchor` (at most `REACH`)."""
    before: re.Pattern[str] | None = None
    """Matches one of the characters a match may hold before its key of `anchor`: the match starts within the
    run of them that ends at the key. None when it would not narrow the starts down."""
    alternatives: tuple[Needed, ...] = ()
    """For a pattern ``a|b|…``, the same for each alternative (every one with an anchor), else empty: a match
    starts where one of them can."""

    def every_key(self) -> frozenset[Key]:
        """The keys of all its sets, anchors and alternatives: what an index of the text should hold."""
        found = frozenset().union(*self.sets, self.anchor or ())
        return found.union(*(alternative.every_key() for alternative in self.alternatives))


class _Set(NamedTuple):
    keys: frozenset[Key]
    lead: int  # how far after the match's start the key starts, at most; `_FAR` when unbounded
    alphabet: frozenset[str] | None  # one-character expressions for what the match holds before it, if known


def keys(pattern: re.Pattern[str]) -> Needed | None:
    """The key sets of `pattern` (see `Needed`), or None when it has no usable literal.

    Also None for a pattern with scoped flags (``(?i:…)``): keys and look-backs are read with the pattern's own
    flags, so such a rule is left to a full scan rather than risk a missed match.
    """
    parsed = _parser.parse(pattern.pattern, pattern.flags)
    reader = _Reader(parsed.state)
    items = list(parsed)
    if _has_scoped_flags(items):
        return None
    whole = _needed(reader, items, pattern.flags)
    branches = [index for index, (op, _) in enumerate(items) if op is codes.BRANCH]
    if whole is None or len(branches) != 1:
        return whole
    # "a … | b …": each alternative has keys of its own, rarer than the union of all of them.
    index = branches[0]
    parts = [
        _needed(reader, items[:index] + list(alt) + items[index + 1 :], pattern.flags) for alt in items[index][1][1]
    ]
    if not all(part is not None and part.anchor is not None for part in parts):
        return whole
    return dataclasses.replace(whole, alternatives=tuple(part for part in parts if part is not None))


def _has_scoped_flags(items: list[Any]) -> bool:
    for op, av in items:
        if op is codes.SUBPATTERN and (av[1] or av[2]):
            return True
        if op is codes.SUBPATTERN or op is codes.ATOMIC_GROUP or op in _REPEATS or op is codes.BRANCH:
            inner = (
                av[-1]
                if op is codes.SUBPATTERN
                else av
                if op is codes.ATOMIC_GROUP
                else av[2]
                if op in _REPEATS
                else None
            )
            branches = [inner] if inner is not None else av[1]
            if any(_has_scoped_flags(list(branch)) for branch in branches):
                return True
    return False


def _needed(reader: _Reader, items: list[Any], flags: int) -> Needed | None:
    found = [s for s in reader.necessary(items, False, False, 0, frozenset()) if _usable(s.keys)]
    if not found:
        return None
    found.sort(key=lambda s: _rank(s.keys), reverse=True)
    sets = tuple(dict.fromkeys(s.keys for s in found))[:_MAX_SETS]
    anchors = [s for s in found if _anchorable(s)]
    if not anchors:
        return Needed(sets, None, 0)
    anchor = max(anchors, key=_anchor_rank)
    before = None
    if anchor.lead and anchor.alphabet is not None and _narrow(anchor.alphabet):
        before = re.compile("|".join(sorted(anchor.alphabet)) or "(?!)", flags)
    return Needed(sets, anchor.keys, min(anchor.lead, REACH), before)


def _anchorable(found: _Set) -> bool:
    """Whether a match's start can be found from the key: it is near, or only a few kinds of character precede."""
    return found.lead <= MAX_LEAD or (found.alphabet is not None and _narrow(found.alphabet))


def _anchor_rank(found: _Set) -> tuple[bool, tuple[bool, int, int], int]:
    """Near keys first (a few starts to try per key, however often the characters before it occur), then rare ones."""
    return (found.lead <= MAX_LEAD, _rank(found.keys), -found.lead)


@functools.lru_cache(maxsize=256)
def _narrow(alphabet: frozenset[str]) -> bool:
    """Whether `alphabet` holds few of the printable ASCII characters (but for capitals: the view is lower case)."""
    one = re.compile("|".join(sorted(alphabet)) or "(?!)")
    return sum(one.fullmatch(chr(code)) is not None for code in _PRINTABLE) <= _NARROW


def _usable(found: frozenset[Key]) -> bool:
    return min(len(key.text) for key in found) >= _MIN_KEY


def _rank(found: frozenset[Key]) -> tuple[bool, int, int]:
    texts = {key.text for key in found}
    return (not texts <= _COMMON, min(len(text) for text in texts), -len(found))


def _best(candidates: list[_Set]) -> _Set | None:
    usable = [found for found in candidates if _usable(found.keys)]
    return max(usable, key=lambda s: (_rank(s.keys), -s.lead)) if usable else None


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


class _Reader:
    """Walks a parsed pattern; holds the parser state that widths of group references need."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def necessary(
        self, items: list[Any], boundary: bool, after: bool, lead: int, alphabet: frozenset[str] | None
    ) -> list[_Set]:
        """Sets of literals of which every match of the sequence `items` contains at least one member each.

        `boundary`: no word character precedes the sequence; `after`: none follows it; `lead`: how far after the
        match's start the sequence starts, at most; `alphabet`: what the match holds before it (None: anything).
        """
        candidates: list[_Set] = []
        run: list[str] = []
        run_boundary, run_lead, run_alphabet = False, 0, alphabet
        for index, (op, av) in enumerate(items):
            if op is codes.LITERAL:
                if not run:
                    run_boundary, run_lead, run_alphabet = boundary, lead, alphabet
                run.append(chr(av))
                boundary, lead = not _word(chr(av)), min(lead + 1, _FAR)
                alphabet = _more(alphabet, _atoms(op, av))
                continue
            if run:
                follows = _nonword_next(items, index, after)
                candidates.append(_literal(run, run_boundary, follows, run_lead, run_alphabet))
                run = []
            follows = _nonword_next(items, index + 1, after)
            candidates += self._item(op, av, _Context(boundary, follows, lead, alphabet))
            boundary = _boundary_after(op, av, boundary)
            lead = min(lead + _parser.SubPattern(self.state, [(op, av)]).getwidth()[1], _FAR)
            alphabet = _more(alphabet, _atoms(op, av))
        if run:
            candidates.append(_literal(run, run_boundary, after, run_lead, run_alphabet))
        return candidates

    def _item(self, op: Any, av: Any, at: _Context) -> list[_Set]:
        if op is codes.SUBPATTERN:
            return self.necessary(list(av[-1]), *at)
        if op is codes.ATOMIC_GROUP:
            return self.necessary(list(av), *at)
        if op is codes.BRANCH:
            return self._branch(av[1], at)
        if op in _REPEATS and av[0] >= 1:
            inner = list(av[2])
            # After the first repetition comes another one or what follows the repeat.
            follows = at.after if av[1] == 1 else at.after and _nonword_next(inner, 0, at.after)
            return self.necessary(inner, at.boundary, follows, at.lead, at.alphabet)
        return []  # character classes, anchors, lookarounds, optional parts: nothing they require

    def _branch(self, branches: list[Any], at: _Context) -> list[_Set]:
        """The union of one set from each alternative: the best one, and the best one that can anchor."""
        best: list[_Set] = []
        anchors: list[_Set] = []
        for branch in branches:
            candidates = self.necessary(list(branch), *at)
            part = _best(candidates)
            if part is None:
                return []
            best.append(part)
            anchorable = [s for s in candidates if _anchorable(s) and _usable(s.keys)]
            if anchorable:
                anchors.append(max(anchorable, key=_anchor_rank))
        found = [_union(best)]
        if len(anchors) == len(branches) and _union(anchors) != found[0]:
            found.append(_union(anchors))
        return found


class _Context(NamedTuple):
    boundary: bool
    after: bool
    lead: int
    alphabet: frozenset[str] | None


def _union(sets: list[_Set]) -> _Set:
    alphabet: frozenset[str] | None = frozenset()
    for s in sets:
        alphabet = _more(alphabet, s.alphabet)
    return _Set(frozenset().union(*(s.keys for s in sets)), max(s.lead for s in sets), alphabet)


def _literal(run: list[str], boundary: bool, after: bool, lead: int, alphabet: frozenset[str] | None) -> _Set:
    text = "".join(run)
    key = Key(text.lower(), boundary and _word(text[0]), after and _word(text[-1]))
    return _Set(frozenset({key}), lead, alphabet)


def _more(alphabet: frozenset[str] | None, atoms: frozenset[str] | None) -> frozenset[str] | None:
    return None if alphabet is None or atoms is None else alphabet | atoms


_CATEGORIES: Final = {
    codes.CATEGORY_SPACE: r"\s",
    codes.CATEGORY_NOT_SPACE: r"\S",
    codes.CATEGORY_DIGIT: r"\d",
    codes.CATEGORY_NOT_DIGIT: r"\D",
    codes.CATEGORY_WORD: r"\w",
    codes.CATEGORY_NOT_WORD: r"\W",
}


def _atoms(op: Any, av: Any) -> frozenset[str] | None:
    """One-character expressions for every character the item can consume; None if unknown."""
    if op is codes.LITERAL:
        return frozenset({re.escape(chr(av))})
    if op is codes.NOT_LITERAL:
        return frozenset({f"[^{re.escape(chr(av))}]"})
    if op is codes.ANY:
        return frozenset({"."})
    if op is codes.IN:
        parts = [_class_part(*part) for part in av]
        return None if None in parts else frozenset({"[" + "".join(part or "" for part in parts) + "]"})
    if op in (codes.AT, codes.ASSERT, codes.ASSERT_NOT):
        return frozenset()
    inner = av[-1] if op is codes.SUBPATTERN else av if op is codes.ATOMIC_GROUP else av[2] if op in _REPEATS else None
    branches = [inner] if inner is not None else av[1] if op is codes.BRANCH else None
    if branches is None:
        return None
    found: frozenset[str] | None = frozenset()
    for branch in branches:
        for item in branch:
            found = _more(found, _atoms(*item))
    return found


def _class_part(op: Any, value: Any) -> str | None:
    if op is codes.NEGATE:
        return "^"
    if op is codes.LITERAL:
        return re.escape(chr(value))
    if op is codes.RANGE:
        return f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}"
    return _CATEGORIES.get(value) if op is codes.CATEGORY else None


def _boundary_after(op: Any, av: Any, boundary: bool) -> bool:
    """Whether no word character precedes what follows this item, given whether none preceded the item."""
    if op is codes.AT:
        # After "\b", a key that starts with a word character has none before it (keys of other kinds ignore this).
        return True if av in _LINE_STARTS else boundary and av is not codes.AT_NON_BOUNDARY
    if op in (codes.ASSERT, codes.ASSERT_NOT):
        behind, inner = av
        return boundary or (op is codes.ASSERT and behind < 0 and _nonword_items(list(inner)))
    if op is codes.LITERAL:
        return not _word(chr(av))
    if op is codes.IN:
        return _nonword_class(av)
    if op in (codes.SUBPATTERN, codes.ATOMIC_GROUP):
        return _sequence_after(list(av[-1] if op is codes.SUBPATTERN else av), boundary)
    if op is codes.BRANCH:
        return all(_sequence_after(list(branch), boundary) for branch in av[1])
    if op in _REPEATS:
        if not _sequence_after(list(av[2]), False):
            return False  # a repetition may end with a word character
        return True if av[0] >= 1 else boundary
    return False


def _sequence_after(items: list[Any], boundary: bool) -> bool:
    for op, av in items:
        boundary = _boundary_after(op, av, boundary)
    return boundary


def _nonword_items(items: list[Any]) -> bool:
    if len(items) != 1:
        return False
    op, av = items[0]
    return _boundary_after(op, av, False)


def _nonword_next(items: list[Any], index: int, after: bool) -> bool:
    """Whether the character matched next from `items[index]` on is never a word character (or the text ends)."""
    for position in range(index, len(items)):
        op, av = items[position]
        if op is codes.AT:
            if av in _ENDS:  # after a "\b", only for keys that end with a word character (see `_literal`)
                return True
            continue
        if op in (codes.ASSERT, codes.ASSERT_NOT):
            continue  # zero-width: the next character comes from what follows
        if op is codes.LITERAL:
            return not _word(chr(av))
        if op is codes.IN:
            return _nonword_class(av)
        following = _nonword_next(items, position + 1, after)
        if op in (codes.SUBPATTERN, codes.ATOMIC_GROUP):
            return _nonword_next(list(av[-1] if op is codes.SUBPATTERN else av), 0, following)
        if op is codes.BRANCH:
            return all(_nonword_next(list(branch), 0, following) for branch in av[1])
        if op in _REPEATS:
            first = _nonword_next(list(av[2]), 0, following)
            return first if av[0] >= 1 else first and following
        return False
    return after


def _nonword_class(av: Any) -> bool:
    """Whether a character class matches only characters that are not word characters."""
    for op, value in av:
        if op is codes.LITERAL and not _word(chr(value)):
            continue
        if op is codes.CATEGORY and value in (codes.CATEGORY_SPACE, codes.CATEGORY_NOT_WORD):
            continue
        low, high = value if op is codes.RANGE else (1, 0)
        if op is codes.RANGE and high - low < 256 and not any(_word(chr(code)) for code in range(low, high + 1)):
            continue
        return False  # NEGATE, word characters, other categories
    return True
