"""The text side of `InjectionScreen`: invisible characters, the folded view the rules read, hidden markup.

Kept apart from the phrase rules (`keel.guardrails._injection_patterns`) because these patterns describe how
text is *hidden or shaped* (zero-width characters, HTML comments, CSS-hidden elements, base64, tool-call
JSON), whatever it says.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from typing import Final

__all__ = [
    "ANY_ARGS",
    "ARGS_FOR",
    "ARGS_KEY",
    "BASE64",
    "BIDI",
    "COMMENT",
    "HIDDEN_CONTENT",
    "HIDDEN_OPEN",
    "HIDDEN_STYLE",
    "INVISIBLE_RUN",
    "RTL",
    "TAG_CANCEL",
    "TOOL_KEY",
    "RUNS_BEYOND",
    "ZERO_WIDTH",
    "fold",
    "illegitimate_runs",
    "invisible",
]

ZERO_WIDTH: Final[frozenset[str]] = frozenset(
    "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164"
)
"""Characters that render as nothing: zero-width space/joiners, word joiner, invisible operators, BOM, soft
hyphen, fillers."""
BIDI: Final[frozenset[str]] = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Bidirectional controls: marks, embeddings, overrides and isolates (they reorder what a person sees)."""
TAG_CANCEL: Final = 0xE007F


def invisible(char: str) -> bool:
    """Whether `char` is invisible: zero-width, a bidi control, a Unicode tag or a supplementary variation selector.

    The last two can smuggle whole ASCII texts past a reader.
    """
    code = ord(char)
    return char in ZERO_WIDTH or char in BIDI or 0xE0000 <= code <= TAG_CANCEL or 0xE0100 <= code <= 0xE01EF


_INVISIBLE: Final = re.escape("".join(sorted(ZERO_WIDTH | BIDI))) + "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
INVISIBLE_RUN: Final = re.compile(f"[{_INVISIBLE}]+")
"""A run of characters for which `invisible` holds: found by ``re`` instead of a loop over every character."""


def _runs_with(wanted: str) -> re.Pattern[str]:
    return re.compile(f"(?<![{_INVISIBLE}])(?=[{_INVISIBLE}]{{4}}|[{_INVISIBLE}]*?[{wanted}])[{_INVISIBLE}]+")


_TAGS: Final = "\U000e0020-\U000e007e"
RUNS_BEYOND: Final[dict[frozenset[str], re.Pattern[str]]] = {
    frozenset({"zero_width"}): _runs_with(re.escape("".join(sorted(BIDI))) + _TAGS),
    frozenset({"bidi_control"}): _runs_with(
        re.escape("".join(sorted(ZERO_WIDTH))) + "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
    ),
    frozenset({"zero_width", "bidi_control"}): _runs_with(_TAGS),
}
"""Once the rules named in the key have all the findings they count, the runs of invisible characters (whole
`INVISIBLE_RUN` matches) that can still add a signal: four characters or more, or one of another rule's."""
_FLAG_TAGS: Final = 7  # tag letters of a subdivision flag: a region code of at most 6, plus slack
RTL: Final = re.compile("[\u0590-\u08ff\ufb1d-\ufdff]")
"""A right-to-left letter (Hebrew, Arabic, Syriac, …): where direction marks have a use."""
COMMENT: Final = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)
"""An HTML comment (or one left open to the end of the text)."""
HIDDEN_OPEN: Final = re.compile(r"<(\w{1,40})\b([^<>]{0,400})>")
"""An opening tag and its attributes (bounded, and stopping at the next ``<``: each tag read once)."""
HIDDEN_STYLE: Final = re.compile(
    r"style\s*=\s*[\"'][^\"']{0,400}?(?:display\s*:\s*none|visibility\s*:\s*hidden|"
    r"font-size\s*:\s*0(?:\.0+)?(?:px|pt|em|rem|%)?\s*(?=;|[\"'])|opacity\s*:\s*0(?:\.0+)?\s*(?=;|[\"'])|"
    r"color\s*:\s*(?:#fff(?:fff)?|white|transparent)\b|(?:left|top|text-indent)\s*:\s*-\d{3,}px)"
    r"|\shidden(?=[\s=/]|$)",
    re.IGNORECASE,
)
"""Attributes that make an element invisible: ``display:none``, zero size or opacity, white text, far off-screen,
or the ``hidden`` attribute."""
HIDDEN_CONTENT: Final = 4_000
"""How far after a hidden element's opening tag its closing tag is looked for: bounded, so unclosed tags cannot
make the search quadratic."""
BASE64: Final = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/_=-])")
"""A run of at least 24 base64 characters (standard or URL-safe alphabet)."""
TOOL_KEY: Final = re.compile(
    r"\\?[\"'](tool|tool_name|function|function_call|tool_calls|name|action|recipient_name)\\?[\"']\s*:\s*\\?[\"'{\[]",
    re.IGNORECASE,
)
"""A key that names the tool in the JSON tool-call formats of the major providers and agent frameworks
(quotes may be escaped: injected JSON usually sits inside a JSON string)."""
ARGS_KEY: Final = re.compile(
    r"\\?[\"'](arguments|args|parameters|params|input|action_input|tool_input)\\?[\"']\s*:", re.IGNORECASE
)
"""A key that carries a tool call's arguments."""
ARGS_FOR: Final[dict[str, frozenset[str]]] = {
    "name": frozenset({"arguments", "args", "action_input"}),
    "action": frozenset({"action_input", "tool_input"}),
}
"""Which argument keys make a `TOOL_KEY` a tool call; ``name`` and ``action`` are common in ordinary data, so
they need the specific ones (``{"name": "Trail boots", "parameters": …}`` is a product)."""
ANY_ARGS: Final = frozenset({"arguments", "args", "parameters", "params", "input", "action_input", "tool_input"})


def illegitimate_runs(text: str, start: int, end: int, rtl: Callable[[], bool]) -> Iterator[tuple[int, int]]:
    """The parts of one run of invisible characters that have no legitimate use.

    `rtl` tells whether `text` has right-to-left letters (asked once a direction mark is met, answered once).
    """
    index, run_start = start, -1
    while index < end:
        step = _flag_tags(text, index, end)
        if step:
            legitimate = True
        else:
            step = 1
            legitimate = _legitimate(text, index, rtl)
        if legitimate and run_start >= 0:
            yield run_start, index
            run_start = -1
        elif not legitimate and run_start < 0:
            run_start = index
        index += step
    if run_start >= 0:
        yield run_start, end


def _flag_tags(text: str, index: int, end: int) -> int:
    """The length of the tag sequence of an emoji subdivision flag (🏴 + tag letters + cancel tag) at `index`."""
    if index == 0 or text[index - 1] != "\U0001f3f4":
        return 0
    stop = index
    while stop < min(end, index + _FLAG_TAGS) and 0xE0020 <= ord(text[stop]) < TAG_CANCEL:
        stop += 1
    return stop + 1 - index if stop < end and ord(text[stop]) == TAG_CANCEL and stop > index else 0


def _legitimate(text: str, index: int, rtl_text: Callable[[], bool]) -> bool:
    char = text[index]
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if char == "\ufeff":
        return index == 0
    if char in "\u200e\u200f\u061c":
        return rtl_text()
    if char in "\u200c\u200d" and before.isalpha() and after.isalpha():
        return before > "\u036f" and after > "\u036f"  # joiners shape Arabic, Indic, … letters, not Latin ones
    if char == "\u200d":
        return _pictographic(before) and _pictographic(after)
    if 0xE0100 <= ord(char) <= 0xE01EF:
        return "\u3400" <= before <= "\u9fff" or "\U00020000" <= before <= "\U0003134f"  # ideographic variants
    return False


def _pictographic(char: str) -> bool:
    # Emoji and the modifiers that sit between an emoji and a joiner (skin tones, the emoji presentation selector).
    return bool(char) and (char >= "\u2600" or char == "\ufe0f")


def fold(text: str) -> tuple[str, list[int] | None]:
    """The view the rules read: NFKC-normalised, case-folded, without invisible characters, look-alikes unmasked.

    Cyrillic and Greek look-alikes inside Latin words ("іgnоrе") are read as the Latin letters they imitate.

    Returns the view and, unless the view lines up with `text` character for character, a map from each view
    index (plus one past the end) to the index in `text` it came from, so findings point at the original text.
    ASCII runs are folded whole; only the other characters go one by one, or, when there are many of them
    (half a million zero-width characters between letters took a second), every character through one table.
    """
    if text.isascii():
        return text.lower(), None
    if (len(text) - len(text.encode("ascii", "ignore"))) * _SPARSE > len(text):
        pieces = list(map(_FOLDED.__getitem__, text))
        positions = chain.from_iterable(map(repeat, range(len(text)), map(len, pieces)))
        return _unmasked("".join(pieces)), [*positions, len(text)]
    out: list[str] = []
    origin: list[int] = []
    for piece in _ASCII_RUN.finditer(text):
        start, end = piece.span()
        if piece.group(1) is not None:
            out.append(piece.group(1).lower())
            origin.extend(range(start, end))
            continue
        for index in range(start, end):
            folded = _fold_char(text[index])
            out.append(folded)
            origin.extend([index] * len(folded))
    origin.append(len(text))
    return _unmasked("".join(out)), origin


# Cyrillic and Greek letters that look like Latin ones (Unicode's confusables, the unmistakable ones), folded.
_LOOKALIKES: Final = {
    **dict(zip("аеорсухіјѕԁһԛԝӏ", "aeopcyxijsdhqwl", strict=True)),
    **dict(zip("αορικνυχ", "aopikvux", strict=True)),
}
_LOOKALIKE_CLASS: Final = "[" + "".join(_LOOKALIKES) + "]"
# A word that mixes Latin letters with look-alikes ("іgnоrе"): the mark of a word disguised from a reader.
# Words wholly in another script are left alone: they are that language, not a disguise.
_MIXED_WORD: Final = re.compile(rf"\b(?=\w*?[a-z])(?=\w*?{_LOOKALIKE_CLASS})\w+")
_TO_LATIN: Final = str.maketrans(_LOOKALIKES)


def _unmasked(view: str) -> str:
    """`view` with the look-alike letters of mixed-script words replaced by the Latin letters they imitate.

    One character for one, so the map from view to text stays as it is.
    """
    return _MIXED_WORD.sub(lambda word: word.group().translate(_TO_LATIN), view)


_ASCII_RUN: Final = re.compile(r"([\x00-\x7f]+)|[^\x00-\x7f]+")
_SPARSE: Final = 16  # non-ASCII characters up to one in this many: folded run by run


class _Table(dict[str, str]):
    """Each character's folded form, computed when first met; cleared when it holds too many to keep."""

    def __missing__(self, char: str) -> str:
        if len(self) >= 1 << 16:
            self.clear()
        folded = self[char] = char.lower() if char.isascii() else _fold_char(char)
        return folded


_FOLDED: Final = _Table()


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return "" if invisible(char) else unicodedata.normalize("NFKC", char).casefold()
