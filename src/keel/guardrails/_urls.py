r"""Where a text points a reader's client: the URLs of Markdown, HTML and bare links, and their normalised hosts.

`find_targets` returns every URL a renderer could load or link to, with whether it loads by itself (an *image*:
Markdown ``![…](…)`` and ``![…][ref]``, reference definitions, HTML ``<img src>``/``srcset``, ``<iframe>``,
``<script>``, ``<video poster>``, CSS ``url(…)``, SVG ``<image href>``) or needs a click (a *link*: Markdown
``[…](…)``, HTML ``<a href>``, ``<https://…>`` autolinks, bare ``https://…``, ``//host/…`` and ``www.…``).

`host_of` reads a URL the way a browser does (WHATWG): any run of ``/`` and ``\\`` after the scheme, userinfo
(``https://trusted@evil/``), ports, percent-encoded and upper-case hosts, trailing dots, IDN in Unicode or
punycode (compared in punycode), full-width dots, and IPv4 in decimal, hex or octal (``http://3232235777/`` is
``192.168.1.1``). Relative URLs and schemes without a host (``mailto:``, ``data:``) have no host.

Everything is linear in the text: the regular expressions have no nested quantifiers and each stops at a
delimiter it cannot cross, and Markdown brackets are paired with one stack in one pass over the bracket tokens.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

__all__ = ["Target", "domains_in", "find_targets", "host_of"]

TargetKind = Literal["image", "link"]


@dataclass(frozen=True, slots=True)
class Target:
    """One URL of a text, where it is, and what replacing it removes."""

    kind: TargetKind
    url: str
    start: int
    """Offset of the URL itself."""
    end: int
    span: tuple[int, int]
    """What a strip replaces: a whole image (``![a](u)``, ``<img …>``), a link's ``(u)`` target, or the URL."""


_FETCHABLE = frozenset({"http", "https", "ftp", "ws", "wss"})
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31}):")
_BRACKETS = re.compile(r"!?\[|\]\(|\]\[|\]")
_DEFINITION = re.compile(r"^[ ]{0,3}\[([^\]\n]{1,999})\]:[ \t]*(?:\n[ \t]*)?(<[^>\n]*>|\S+)", re.MULTILINE)
_BARE = re.compile(
    r"(?:\b(?:https?|ftp|wss?):[/\\]*|(?<![\w/\\:.@-])(?:[/\\]{2}(?=[\w.-]{1,253}\.[a-z]|\[)|www\.))"
    r"[^\s<>\"'`\])}|]+",
    re.IGNORECASE,
)
# A tag to its ">", quoted values whole (a ">" inside quotes does not end it); each branch starts with a different
# character, so matching is linear.
_TAG = re.compile(r"<([a-zA-Z][\w:-]{0,40})((?:\"[^\"]{0,4000}\"|'[^']{0,4000}'|[^\"'<>])*)>")
_ATTRIBUTE = re.compile(
    r"([\w:-]{1,40})\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))",
)
_CSS_URL = re.compile(r"url\(\s*[\"']?([^\"')\s]+)", re.IGNORECASE)
_URL_ATTRIBUTES = frozenset(
    {"src", "srcset", "href", "xlink:href", "data", "poster", "background", "action", "formaction", "lowsrc"}
)
_LINK_TAGS = frozenset({"a", "area", "form", "button"})
_DOMAIN = re.compile(r"(?<![\w.-])(?:[\w](?:[\w-]{0,62}[\w])?[.\u3002\uff0e\uff61]){1,10}[a-z]{2,24}\b", re.IGNORECASE)
_IPV4_LIKE = re.compile(r"[0-9a-fA-Fx.]{1,64}")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_MAX_URL = 2048  # characters of a URL read: its host comes first (bounded work on a text that is one long run)
_MAX_LABEL = 1001  # a Markdown link label has at most 999 characters (plus its brackets)
_TITLE_ROOM = 400  # characters after a Markdown target in which its closing parenthesis may follow (a title)


def find_targets(text: str) -> list[Target]:
    """Every URL of `text` in Markdown, HTML and bare form, each once, in text order."""
    found = [*_markdown(text), *_html(text)]
    taken = sorted((t.start, t.end) for t in found)
    found.extend(t for t in _bare(text) if not _overlaps(taken, t.start, t.end))
    return sorted(found, key=lambda t: t.start)


def domains_in(text: str) -> Iterator[str]:
    """Host names mentioned without a scheme (``example.com``, a mail address's domain), normalised."""
    for match in _DOMAIN.finditer(text):
        host = _normalised(match.group(0))
        if host:
            yield host


def host_of(url: str) -> str | None:
    """The normalised host `url` reaches, or None when it reaches none (relative, ``mailto:``, ``data:``)."""
    url = url.strip().strip("<>\"'")
    scheme = _SCHEME.match(url)
    if scheme is not None:
        if scheme.group(1).lower() not in _FETCHABLE:
            return None
        rest = url[scheme.end() :].lstrip("/\\")
    elif url[:2] in ("//", "\\\\", "/\\", "\\/"):
        rest = url.lstrip("/\\")
    elif url[:4].lower() == "www.":
        rest = url
    else:
        return None
    authority = re.split(r"[/\\?#\s]", rest, maxsplit=1)[0]
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        return _ipv6(authority[1:].partition("]")[0])
    return _normalised(authority.partition(":")[0]) or None


def _normalised(host: str) -> str:
    host = unquote(host).translate(_DOTS).casefold().rstrip(".")
    if not host:
        return ""
    if _IPV4_LIKE.fullmatch(host):
        try:  # the forms a resolver accepts: 3232235777, 0xc0a80101, 0300.0250.1.1, 192.168.257
            return str(ipaddress.IPv4Address(socket.inet_aton(host)))
        except (OSError, ValueError):
            pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass  # not a valid IDN: compared as written, casefolded
    return host.removeprefix("www.")


def _ipv6(literal: str) -> str | None:
    try:
        address = ipaddress.IPv6Address(literal.partition("%")[0])
    except ValueError:
        return None
    return str(address.ipv4_mapped) if address.ipv4_mapped is not None else f"[{address.compressed}]"


def _overlaps(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) overlaps a range of `taken` (sorted, and disjoint: URLs do not overlap each other)."""
    index = bisect.bisect_left(taken, (end, -1)) - 1
    return index >= 0 and taken[index][1] > start


def _markdown(text: str) -> Iterator[Target]:
    """Markdown images and links, inline and by reference, and the definitions they refer to."""
    definitions: dict[str, tuple[str, int, int]] = {}
    lines: list[tuple[str, str, int]] = []  # every definition line: (label, url, offset of the url)
    for match in _DEFINITION.finditer(text):
        url = match.group(2)
        start = match.start(2) + (1 if url.startswith("<") else 0)
        url = url.strip("<>")
        label = _label(match.group(1))
        definitions.setdefault(label, (url, start, start + len(url)))
        lines.append((label, url, start))
    by_images: set[str] = set()
    yield from _brackets(text, definitions, by_images)
    for label, url, start in lines:
        # A definition loads nothing by itself: it is an image when an image refers to it, else a link.
        yield Target("image" if label in by_images else "link", url, start, start + len(url), (start, start + len(url)))


def _brackets(text: str, definitions: dict[str, tuple[str, int, int]], by_images: set[str]) -> Iterator[Target]:
    """Inline targets and reference usages, brackets paired with one stack; image-used labels go to `by_images`."""
    stack: list[tuple[int, bool]] = []  # (offset of the opening bracket, opened by "![")
    runs = _Runs(text)
    for match in _BRACKETS.finditer(text):
        token, at = match.group(0), match.start()
        if _escaped(text, at):
            continue
        if token in ("[", "!["):
            stack.append((at, token == "!["))
            continue
        opened_at, image = stack.pop() if stack else (at, True)  # an unpaired target: taken as an image
        if token == "](":
            yield from _inline(text, runs, opened_at if image else at + 1, image, match.end())
        elif at - opened_at > _MAX_LABEL:
            continue  # longer than any Markdown label: not a reference
        elif token == "][" and image:
            close = text.find("]", match.end(), match.end() + 1000)
            if close != -1:
                # A full reference whose label is not defined falls back to the text as a shortcut (CommonMark).
                shortcut = _label(text[opened_at + 2 : at])
                label = _label(text[match.end() : close]) or shortcut
                label = label if label in definitions else shortcut
                by_images.add(label)
                yield from _by_reference(definitions, label, (opened_at, close + 1))
        elif token == "]" and image and opened_at != at:
            label = _label(text[opened_at + 2 : at])
            by_images.add(label)
            yield from _by_reference(definitions, label, (opened_at, at + 1))


class _Runs:
    """Where the run of URL characters (no space, no ``)``) and the line holding an offset end, found by bisection.

    Looking the ends up instead of scanning for them keeps `_inline` constant-time per target, so a text of
    ``](`` repeated thousands of times is still read in linear time.
    """

    def __init__(self, text: str) -> None:
        self.breaks = [m.start() for m in re.finditer(r"[\s)]", text)]
        self.closers = [m.start() for m in re.finditer(r"[>\n]", text)]
        self.length = len(text)

    def url_end(self, at: int) -> int:
        index = bisect.bisect_left(self.breaks, at)
        return self.breaks[index] if index < len(self.breaks) else self.length

    def angle_end(self, at: int) -> int | None:
        index = bisect.bisect_left(self.closers, at)
        return self.closers[index] if index < len(self.closers) else None


def _inline(text: str, runs: _Runs, first: int, image: bool, start: int) -> Iterator[Target]:
    """The target of ``![…](url "title")`` or ``[…](url)`` beginning at `start` (just after the parenthesis).

    A strip replaces an image from `first` (its ``!``) and a link's ``(…)`` from `first` (its parenthesis).
    """
    for _ in range(3):  # CommonMark allows spaces and one line ending before the destination
        if start < len(text) and text[start] in " \t\n":
            start += 1
    if text.startswith("<", start):
        close = runs.angle_end(start)
        if close is None or text[close] != ">":
            return
        start, end = start + 1, close
    else:
        end = min(runs.url_end(start), start + _MAX_URL)
    if end == start:
        return
    closing = text.find(")", end, end + _TITLE_ROOM)
    last = closing + 1 if closing != -1 else end
    yield Target("image" if image else "link", text[start:end], start, end, (first, last))


def _by_reference(definitions: dict[str, tuple[str, int, int]], label: str, span: tuple[int, int]) -> Iterator[Target]:
    if label in definitions:  # the usage; the definition is a target of its own
        yield Target("image", definitions[label][0], span[0], span[1], span)


def _label(raw: str) -> str:
    return " ".join(raw.split()).casefold()


def _escaped(text: str, at: int) -> bool:
    backslashes = 0
    while at - backslashes - 1 >= 0 and text[at - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _html(text: str) -> Iterator[Target]:
    """URLs in HTML tags' attributes and inline CSS; a tag that loads them by itself is replaced whole."""
    for tag in _TAG.finditer(text):
        name, body = tag.group(1).lower(), tag.group(2)
        offset = tag.start(2)
        for attribute in _ATTRIBUTE.finditer(body):
            key = attribute.group(1).lower()
            index = next(i for i in (2, 3, 4) if attribute.group(i) is not None)
            value, at = attribute.group(index), offset + attribute.start(index)
            if key in _URL_ATTRIBUTES:
                kind: TargetKind = "link" if key in ("href", "action", "formaction") and name in _LINK_TAGS else "image"
                span = (tag.start(), tag.end()) if kind == "image" else (at, at + len(value))
                for url, start in _urls_in_value(value, srcset=key == "srcset"):
                    yield Target(kind, url, at + start, at + start + len(url), span)
            elif key == "style":
                for css in _CSS_URL.finditer(value):
                    start = at + css.start(1)
                    yield Target("image", css.group(1), start, start + len(css.group(1)), (tag.start(), tag.end()))


def _urls_in_value(value: str, *, srcset: bool) -> Iterator[tuple[str, int]]:
    if not srcset:
        stripped = value.strip()
        yield stripped, value.find(stripped) if stripped else 0
        return
    for candidate in re.finditer(r"[^\s,]+", value):  # "a.png 1x, https://evil/b.png 2x": every URL counts
        if not re.fullmatch(r"\d+(?:\.\d+)?[wx]", candidate.group(0)):
            yield candidate.group(0), candidate.start()


def _bare(text: str) -> Iterator[Target]:
    for match in _BARE.finditer(text):
        url = match.group(0).rstrip(".,;:!?*_~")
        yield Target("link", url, match.start(), match.start() + len(url), (match.start(), match.start() + len(url)))
