"""The text side of `InjectionScreen`: invisible characters, the folded view the rules read, hidden markup.

Kept apart from the phrase rules (`keel.guardrails._injection_patterns`) because these patterns describe how
text is *hidden or shaped* (zero-width characters, HTML comments, CSS-hidden elements, base64, tool-call
JSON), whatever it says.
"""

from __future__ import annotations

import functools
import re
import unicodedata
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
    "ZERO_WIDTH",
    "fold",
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


INVISIBLE_RUN: Final = re.compile(
    "[" + re.escape("".join(sorted(ZERO_WIDTH | BIDI))) + "\U000e0000-\U000e007f\U000e0100-\U000e01ef]+"
)
"""A run of characters for which `invisible` holds: found by ``re`` instead of a loop over every character."""
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


def fold(text: str) -> tuple[str, list[int] | None]:
    """The view the rules read: NFKC-normalised, case-folded, without invisible characters.

    Returns the view and, unless the view lines up with `text` character for character, a map from each view
    index (plus one past the end) to the index in `text` it came from, so findings point at the original text.
    ASCII runs are folded whole; only the other characters go one by one.
    """
    if text.isascii():
        return text.lower(), None
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
    return "".join(out), origin


_ASCII_RUN: Final = re.compile(r"([\x00-\x7f]+)|[^\x00-\x7f]+")


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return "" if invisible(char) else unicodedata.normalize("NFKC", char).casefold()
