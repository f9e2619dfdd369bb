"""Length limits (G3, format compliance): an answer longer than a downstream system or a reader can take.

`LengthGuard` measures an answer in characters and, optionally, in lines. A long answer is a cost (every
agent it is handed to pays for it again), a rendering problem (an SMS, a ticket title, a UI field) and often a
sign that the model rambles instead of answering. Modes: ``"truncate"`` lets a shortened copy through (cut at
a word boundary, marked with ``…``), ``"block"`` refuses it, ``"escalate"`` pauses the run for a person,
``"flag"`` lets it through marked.

On a typed answer the guard judges the answer's JSON; ``"truncate"`` then shortens each string field that is
itself over the limit (the JSON structure, numbers and booleans are never cut), so use ``"block"`` or
``"escalate"`` for a hard ceiling on a typed answer as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from keel.errors import ConfigError
from keel.guardrails.base import Action, Finding, GuardContext, Verdict

__all__ = ["LengthGuard", "LengthMode"]

LengthMode = Literal["truncate", "block", "escalate", "flag"]
"""What `LengthGuard` asks for when an answer is too long."""

_ELLIPSIS = "…"
_ACTIONS: dict[LengthMode, Action] = {"truncate": "redact", "block": "block", "escalate": "escalate", "flag": "flag"}


@dataclass(frozen=True, slots=True)
class LengthGuard:
    """A guard that holds answers to at most `max_chars` characters (and `max_lines` lines, when set).

    Example:
        >>> LengthGuard(max_chars=12).check("Order 1234 has shipped today.", GuardContext()).text
        'Order 1234…'
    """

    max_chars: int
    """The most characters an answer may have."""
    max_lines: int | None = None
    """The most lines an answer may have; None for no line limit."""
    mode: LengthMode = "truncate"
    """The action on a too-long answer: ``"truncate"``, ``"block"``, ``"escalate"`` or ``"flag"``."""
    name: str = "length"
    """The guard's name, as journaled."""

    def __post_init__(self) -> None:
        if self.mode not in get_args(LengthMode):
            raise ConfigError(f"LengthGuard.mode must be one of {', '.join(get_args(LengthMode))}; got {self.mode!r}")
        for field, value in (("max_chars", self.max_chars), ("max_lines", self.max_lines)):
            if value is None and field == "max_lines":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"LengthGuard.{field} must be a whole number above zero, got {value!r}")

    def check(self, text: str, context: GuardContext) -> Verdict:
        """Judge `text`'s length; `context` is not consulted."""
        lines = text.count("\n") + 1
        too_many_lines = self.max_lines is not None and lines > self.max_lines
        if len(text) <= self.max_chars and not too_many_lines:
            return Verdict(guard=self.name, action="pass")
        problems = []
        if len(text) > self.max_chars:
            problems.append(f"{len(text)} characters, over the limit of {self.max_chars}")
        if too_many_lines:
            problems.append(f"{lines} lines, over the limit of {self.max_lines}")
        kept = self._shorten(text)
        cut_at = len(kept.removesuffix(_ELLIPSIS))
        return Verdict(
            guard=self.name,
            action=_ACTIONS[self.mode],
            findings=(Finding("too_long", cut_at, len(text), f"…[{len(text) - cut_at} characters cut]"),),
            text=kept if self.mode == "truncate" else None,
            detail="the answer has " + " and ".join(problems),
            scores={"chars": float(len(text)), "lines": float(lines)},
        )

    def _shorten(self, text: str) -> str:
        """`text` within both limits: whole lines first, then cut at the last space that fits, plus ``…``."""
        if self.max_lines is not None:
            text = "\n".join(text.split("\n")[: self.max_lines])
        if len(text) <= self.max_chars:
            return text
        room = self.max_chars - len(_ELLIPSIS)
        cut = text[:room]
        space = cut.rfind(" ")
        if space > room // 2:  # a word boundary that keeps most of the text; otherwise cut mid-word
            cut = cut[:space]
        return cut.rstrip() + _ELLIPSIS
