"""Prompt-injection screening of user input and tool outputs (G5), and quarantine of flagged tool output.

`InjectionScreen` looks for text that tries to steer the model instead of informing it:

============================  =====================================================================
kind                          what it catches
============================  =====================================================================
``instruction_override``      "ignore all previous instructions", "new instructions:", "reveal your system
                              prompt", "do not tell the user", "note to the AI", jailbreak phrases
``role_override``             "you are now an unrestricted AI", "act as …", fake ``System:`` turns,
                              ``### System`` headings, ``<system>`` tags
``template_token``            chat-template tokens: ``<|im_start|>``, ``[INST]``, ``<<SYS>>``, ``<start_of_turn>``
``tool_coercion``             "call the refund tool", "you must now invoke …", JSON shaped like a tool call
                              (``{"tool": …, "arguments": …}``), ``<tool_call>`` markup
``hidden_text``               zero-width and bidi control characters, Unicode tag characters (invisible ASCII),
                              CSS-hidden HTML elements that address the model
``html_comment``              an HTML comment that addresses the model or carries any of the above
``encoded_instructions``      a base64 blob (≥ 24 characters) that decodes to text carrying any of the above
``classifier``                user input only: the second stage, a small model of jailbreak wording (personas
                              "with no restrictions", "two responses, one unfiltered", hypothetical framings),
                              for the variety that no phrase list covers; see `keel.guardrails._injection_classifier`
============================  =====================================================================

Scoring: each rule has a weight, 1.0 for text that has no business in a ticket, a page or a tool result, 0.5
for phrases that ordinary text sometimes uses ("developer mode", "imagine you are", a stray zero-width space).
The score is the sum of the weights of the *distinct* rules that fired (a rule counts once however often it
matches). The verdict is ``"block"`` with every finding when the score reaches `InjectionScreen.threshold`
(default 1.0: one strong signal, or two weak ones), and ``"pass"`` without findings otherwise; the score is in
`Verdict.scores` either way. Lower the threshold to 0.5 to block on any signal; raise it to 2.0 to demand two
strong ones. What happens next is the pipeline's decision: rejected user input, quarantined tool output.

`quarantine` wraps flagged tool output so the model reads it as data (format documented there; it lives in
`keel.guardrails._quarantine` and is exported here).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from keel.errors import ConfigError
from keel.guardrails import _injection_classifier as classifier
from keel.guardrails import _injection_occurrences as occurrences
from keel.guardrails import _injection_patterns as rules
from keel.guardrails import _injection_text as pat
from keel.guardrails._quarantine import quarantine
from keel.guardrails.base import Finding, GuardContext, Verdict

__all__ = ["InjectionScreen", "quarantine"]

_PREVIEW_CHARS = 80
_MAX_DEPTH = 2  # base64 inside base64 inside text, no deeper: bounded work on hostile input
_MAX_FINDINGS = 16  # per rule: it counts once in the score, and a hostile page could make thousands
_PHRASE_KINDS = frozenset({"instruction_override", "role_override", "template_token", "tool_coercion"})
_VOCABULARY = occurrences.Vocabulary.of(key for rule in rules.RULES if rule.keys for key in rule.keys.every_key())


@dataclass(frozen=True, slots=True)
class _Signal:
    rule: str
    weight: float
    finding: Finding
    data_only: bool = False


@dataclass(frozen=True, slots=True)
class InjectionScreen:
    """A guard that blocks text carrying prompt injection; see the module docstring for kinds and scoring."""

    name: str = "injection"
    """The guard's name, as journaled."""
    threshold: float = 1.0
    """The score at which the verdict becomes ``"block"``: 1.0 blocks on one strong or two weak signals."""
    classifier: bool = True
    """Whether user input is also scored by the second stage, a model of jailbreak wording (a signal of weight 1.0
    when it fires); tool output is screened by the rules alone. False screens input by the rules alone."""

    def __post_init__(self) -> None:
        value = self.threshold
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"InjectionScreen.threshold must be a positive number, got {value!r}")

    def check(self, text: str, context: GuardContext) -> Verdict:
        """Screen `text`; from the user (``context.origin == "input"``), asking for a tool is not suspicious."""
        folded = pat.fold(text)
        signals = _scan(text, depth=0, folded=folded)
        if context.origin == "input":  # the user is the principal: "call the refund tool" is a request, not coercion
            signals = [s for s in signals if s.finding.kind != "tool_coercion" and not s.data_only]
            if self.classifier:
                signals += _classified(text, folded)
        best: dict[str, float] = {}
        for signal in signals:
            best[signal.rule] = max(best.get(signal.rule, 0.0), signal.weight)
        score = round(float(sum(best.values())), 3)
        scores = {"score": score, "threshold": float(self.threshold)}
        if not signals or score < self.threshold:
            detail = f"below threshold: {_summary(signals)}" if signals else ""
            return Verdict(guard=self.name, action="pass", detail=detail, scores=scores)
        findings = _distinct(signal.finding for signal in signals)
        detail = f"prompt injection suspected (score {score:g} >= {self.threshold:g}): {_summary(signals)}"
        return Verdict(guard=self.name, action="block", findings=findings, detail=detail, scores=scores)


# --- scanning ---------------------------------------------------------------------------------------------


def _scan(text: str, depth: int, folded: tuple[str, list[int] | None] | None = None) -> list[_Signal]:
    signals = _hidden_characters(text, depth)
    view, origin = folded or pat.fold(text)
    found = occurrences.Occurrences(view, _VOCABULARY)  # shared: many rules look for the same words
    for rule in rules.RULES:
        for match in islice(_nonempty(occurrences.matches(rule.pattern, rule.keys, found)), _MAX_FINDINGS):
            start, end = _original_span(origin, match.start(), match.end())
            signals.append(_Signal(rule.id, rule.weight, _finding(rule.kind, text, start, end), rule.data_only))
    signals += _hidden_markup(text, signals)
    signals += _json_tool_calls(text)
    if depth < _MAX_DEPTH:
        signals += _encoded(text, depth)
    return signals


def _classified(text: str, folded: tuple[str, list[int] | None]) -> list[_Signal]:
    """The second stage's signal: the best window of the folded text, when the model scores it an injection."""
    model = classifier.load()
    view, origin = folded
    best = model.score(view)
    if best is None or best.probability < model.threshold:
        return []
    start, end = _original_span(origin, best.start, best.end)
    finding = Finding("classifier", start, end, _clip(f"p={best.probability:.2f}: {text[start:end]}"))
    return [_Signal("classifier", 1.0, finding)]


def _nonempty(found: Iterable[re.Match[str]]) -> Iterator[re.Match[str]]:
    return (match for match in found if match.end() > match.start())


def _original_span(origin: list[int] | None, start: int, end: int) -> tuple[int, int]:
    if origin is None:
        return start, end
    return origin[start], origin[end - 1] + 1


def _hidden_characters(text: str, depth: int) -> list[_Signal]:
    """Invisible characters, grouped in runs; the text of Unicode tag runs is screened too, all runs as one.

    The ones with a legitimate use are left alone (`_injection_text.illegitimate_runs`): emoji joiners, joiners
    inside scripts that need them, direction marks in right-to-left text, a leading BOM, the tags of a
    subdivision flag.
    """
    signals: list[_Signal] = []
    tag_runs: list[tuple[int, int, str]] = []
    counts: Counter[str] = Counter()
    rtl = functools.cache(lambda: pat.RTL.search(text) is not None)
    finder, position = pat.INVISIBLE_RUN, 0
    while (found := finder.search(text, position)) is not None:
        position = found.end()
        for start, end in pat.illegitimate_runs(text, found.start(), found.end(), rtl):
            run = text[start:end]
            tags = "".join(chr(ord(char) - 0xE0000) for char in run if 0xE0020 <= ord(char) <= 0xE007E)
            if tags:
                tag_runs.append((start, end, tags))
                continue
            rule = "invisible_run" if len(run) >= 4 else "bidi_control" if set(run) <= pat.BIDI else "zero_width"
            counts[rule] += 1
            if counts[rule] <= _MAX_FINDINGS:
                weight = 1.0 if rule == "invisible_run" else 0.5
                signals.append(_Signal(rule, weight, _finding("hidden_text", text, start, end)))
        # Once lone zero-width characters (or bidi controls) add nothing, only the runs that can are read:
        # half a million of them took a second.
        full = frozenset(rule for rule in ("zero_width", "bidi_control") if counts[rule] >= _MAX_FINDINGS)
        finder = pat.RUNS_BEYOND.get(full, finder)
    return signals + _tag_text(tag_runs, depth)


def _tag_text(tag_runs: list[tuple[int, int, str]], depth: int) -> list[_Signal]:
    """Signals for Unicode tag runs (invisible ASCII); their decoded texts, joined, are screened once."""
    if not tag_runs:
        return []
    hidden = "\n".join(tags for _, _, tags in tag_runs)
    hits = _scan(hidden, depth + 1) if depth < _MAX_DEPTH else []
    note = " (carries instructions)" if any(s.finding.kind in _PHRASE_KINDS for s in hits) else ""
    return [
        _Signal("unicode_tags", 1.0, Finding("hidden_text", start, end, _clip(f"invisible tag text{note}: {tags}")))
        for start, end, tags in tag_runs[:_MAX_FINDINGS]
    ]


def _hidden_markup(text: str, signals: list[_Signal]) -> list[_Signal]:
    """HTML comments and CSS-hidden elements whose content addresses the model or carries a phrase signal."""
    phrases = sorted((s.finding.start, s.finding.end) for s in signals if s.finding.kind in _PHRASE_KINDS)
    phrase_starts = [start for start, _ in phrases]
    longest = max((end - start for start, end in phrases), default=0)

    def aimed(start: int, end: int) -> bool:
        # A phrase overlapping [start, end) starts before `end` and less than `longest` characters before `start`.
        first = bisect.bisect_left(phrase_starts, start - longest)
        last = bisect.bisect_left(phrase_starts, end)
        if any(phrases[n][1] > start for n in range(first, last)):
            return True
        return rules.AIMED_AT_MODEL.search(pat.fold(text[start:end])[0]) is not None

    found: list[_Signal] = []
    for match in pat.COMMENT.finditer(text):
        if len(found) < _MAX_FINDINGS and aimed(match.start(1), match.end(1)):
            found.append(_Signal("html_comment", 0.5, _finding("html_comment", text, match.start(), match.end())))
    hidden = 0
    for start, content_start, content_end, end in _hidden_elements(text):
        if hidden < _MAX_FINDINGS and text[content_start:content_end].strip() and aimed(content_start, content_end):
            hidden += 1
            found.append(_Signal("css_hidden", 0.5, _finding("hidden_text", text, start, end)))
    return found


def _hidden_elements(text: str) -> Iterator[tuple[int, int, int, int]]:
    """CSS-hidden elements: (start, content start, content end, end), closed within `HIDDEN_CONTENT` characters.

    Elements nested in one already reported are skipped, so each character is read a bounded number of times.
    """
    covered = 0
    unclosed: dict[str, int] = {}  # tag → searched up to here without finding its closing tag
    for match in pat.HIDDEN_OPEN.finditer(text):
        if match.start() < covered or not pat.HIDDEN_STYLE.search(match.group(2)):
            continue
        tag = match.group(1).lower()
        limit = min(match.end() + pat.HIDDEN_CONTENT, len(text))
        if unclosed.get(tag, -1) >= limit:
            continue
        close = _closing_tag(tag).search(text, max(match.end(), unclosed.get(tag, 0)), limit)
        if close is None:
            unclosed[tag] = limit
            continue
        covered = close.end()
        yield match.start(), match.end(), close.start(), close.end()


@functools.lru_cache(maxsize=256)
def _closing_tag(tag: str) -> re.Pattern[str]:
    return re.compile(rf"</{re.escape(tag)}\s{{0,16}}>", re.IGNORECASE)


def _json_tool_calls(text: str) -> list[_Signal]:
    """Objects shaped like a tool call: a tool-naming key with an argument key a few hundred characters away.

    ``{"tool": "refund", "arguments": {…}}``, ``{"name": …, "arguments": …}``, ``{"function": …, "parameters": …}``.
    """
    arguments: dict[str, list[tuple[int, int]]] = {}
    for args in pat.ARGS_KEY.finditer(text):
        arguments.setdefault(args.group(1).lower(), []).append(args.span())
    found: list[_Signal] = []
    if not arguments:
        return found
    for key in pat.TOOL_KEY.finditer(text):
        near = [
            span
            for name in pat.ARGS_FOR.get(key.group(1).lower(), pat.ANY_ARGS)
            if (span := _nearest(arguments.get(name, []), key.start() - 300, key.end() + 300)) is not None
        ]
        if near:
            start, end = min([key.start(), *(s for s, _ in near)]), max([key.end(), *(e for _, e in near)])
            found.append(_Signal("json_tool_call", 1.0, _finding("tool_coercion", text, start, end)))
            if len(found) >= _MAX_FINDINGS:
                break
    return found


def _nearest(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The first of the sorted `spans` lying within [start, end)."""
    index = bisect.bisect_left(spans, (start, 0))
    return spans[index] if index < len(spans) and spans[index][1] <= end else None


def _encoded(text: str, depth: int) -> list[_Signal]:
    """Base64 blobs that decode to readable text carrying a phrase signal; binary payloads (images) are data.

    The decoded texts are joined and screened once, then each hit is traced back to its blob.
    """
    blobs: list[tuple[int, int, str]] = []
    for match in pat.BASE64.finditer(text):
        decoded = _decode_base64(match.group())
        if decoded is not None:
            blobs.append((match.start(), match.end(), decoded))
    if not blobs:
        return []
    offsets, pieces, position = [], [], 0
    for _, _, decoded in blobs:
        offsets.append(position)
        pieces.append(decoded)
        position += len(decoded) + 2
    wanted = _PHRASE_KINDS | {"encoded_instructions"}
    carrying = sorted(
        {
            bisect.bisect_right(offsets, s.finding.start) - 1
            for s in _scan("\n\n".join(pieces), depth + 1)
            if s.finding.kind in wanted
        }
    )
    found: list[_Signal] = []
    for number in carrying[:_MAX_FINDINGS]:
        start, end, decoded = blobs[number]
        finding = Finding("encoded_instructions", start, end, _clip(f"base64 of: {decoded}"))
        found.append(_Signal("base64_instructions", 1.0, finding))
    return found


def _decode_base64(blob: str) -> str | None:
    data = blob.rstrip("=").replace("-", "+").replace("_", "/")
    if len(data) % 4 == 1:
        data = data[:-1]
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not decoded or decoded.isprintable():
        return decoded or None
    printable = sum(char.isprintable() or char in "\n\r\t" for char in decoded)
    return decoded if printable / len(decoded) >= 0.95 else None


# --- findings and previews ------------------------------------------------------------------------------------


def _finding(kind: str, text: str, start: int, end: int) -> Finding:
    return Finding(kind, start, end, _clip(text[start:end]))


def _clip(text: str) -> str:
    shown = "".join(f"<U+{ord(char):04X}>" if pat.invisible(char) else char for char in text)
    shown = " ".join(shown.split())
    return shown if len(shown) <= _PREVIEW_CHARS else shown[: _PREVIEW_CHARS - 1] + "…"


def _distinct(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    seen: dict[tuple[str, int, int], Finding] = {}
    for finding in findings:
        seen.setdefault((finding.kind, finding.start, finding.end), finding)
    return tuple(sorted(seen.values(), key=lambda f: (f.start, f.end, f.kind)))


def _summary(signals: list[_Signal]) -> str:
    counts = Counter(signal.finding.kind for signal in signals)
    return ", ".join(f"{kind} x{count}" if count > 1 else kind for kind, count in sorted(counts.items()))
