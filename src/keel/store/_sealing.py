"""Encryption at rest of journaled content: what every store seals before it writes and opens after it reads.

With a key (``open_store(url, encryption_key=...)`` or ``KEEL_JOURNAL_KEY``), the content of what a store keeps is
sealed with AES-256-GCM (`cryptography`): each event's whole payload, a run's task, output, report and reason, a
review item's arguments, reason and note, and every cached value. What queries, rollups, budgets and the dashboard's
counters need stays in clear beside it: the event's kind, seq, phase, tokens, cost, latency and time, and the
payload keys `CLEAR` lists for its kind (tool names, outcomes, statuses, guard verdicts, attempts, ledger keys).
A payload key that is not listed is sealed: a field a later version adds is content until declared otherwise.

A sealed value is ``keel-sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``. The key id (a digest of the
key, not the key) says which key sealed it, so keys rotate: ``KEEL_JOURNAL_KEY="new,old"`` seals with the first
and opens with any. The associated data binds each value to where it belongs (run, seq and kind; run and field;
review id and field; cache key): a sealed value moved elsewhere does not open. Without a key nothing is sealed,
and a sealed value found then raises `JournalKeyError` rather than passing for content, as does a value sealed
with a key that is not given, or altered.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from keel.errors import ConfigError, JournalKeyError, MissingDependencyError
from keel.journal import Event, EventKind
from keel.store._sqlite_rows import dumps
from keel.store.base import ReviewItem, RunRecord

__all__ = ["CLEAR", "KEY_ENV", "Sealing", "new_journal_key", "sealing_for"]

KEY_ENV = "KEEL_JOURNAL_KEY"
_PREFIX = "keel-sealed:v1:"
_FIELD = "_sealed"
"""The payload key (and the one key of a sealed JSON column) that holds the sealed value."""

_COMMON = frozenset({"call_id", "tool", "attempt", "model", "step"})
CLEAR: dict[EventKind, frozenset[str]] = {
    EventKind.RUN_STARTED: frozenset(
        {
            "agent",
            "session_id",
            "model",
            "tools",
            "budget",
            "output_schema",
            "user",
            "defined_in",
            "owner",
            "limits",
            "tiers",
            "resumed",
            "from",
            "review_ids",
            "interrupted_after",
            "parent_run_id",
            "role",
        }
    ),  # fmt: skip
    EventKind.MODEL_CALLED: frozenset(
        {
            "finish_reason",
            "provider_id",
            "confidence",
            "informed_by",
            "reserved_tokens",
            "error",
            "retryable",
            "retry_after_s",
            "interrupted",
            "usage_estimated",
            "overrun",
            "tier",
            "tier_reason",
            "cached",
            "cache_key",
        }
    ),  # fmt: skip
    EventKind.TOOL_CALLED: frozenset({"outcome", "severity", "side_effects", "idempotency_key", "ordinal"}),
    EventKind.TOOL_REJECTED: frozenset({"rejections"}),
    EventKind.GUARD_VERDICT: frozenset({"guard", "verdict", "target", "quarantined", "scores"}),
    EventKind.BUDGET_RESERVED: frozenset({"entry_id", "keys", "usd", "tokens", "ttl_s"}),
    EventKind.BUDGET_REFUSED: frozenset(
        {"limit", "needed", "remaining", "key", "window", "ceiling", "spent", "reserved"}
    ),
    EventKind.ESCALATED: frozenset({"trigger", "review_ids", "elapsed_s"}),
    EventKind.REVIEW_DECIDED: frozenset({"review_id", "decision", "by", "action", "decided_at", "review_at_usd"}),
    EventKind.RETRY_SCHEDULED: frozenset({"delay_s"}),
    EventKind.FALLBACK_USED: frozenset({"from", "to", "skipped", "degraded", "trigger", "cache"}),
    EventKind.LOOP_DETECTED: frozenset({"state_hash", "kind", "period", "action"}),
    EventKind.CACHE_HIT: frozenset({"key", "kind", "saved_tokens", "saved_cost_usd"}),
    EventKind.CHECKPOINT: frozenset({"state_hash", "results", "stage"}),
    EventKind.PLAN_VERSION: frozenset({"version"}),
    EventKind.RUN_FINISHED: frozenset({"status"}),
}
"""Per event kind, the payload keys kept in clear (beside `_COMMON`'s): metadata, never what a person or a tool
wrote. Everything else of a payload is readable only with the key."""


def new_journal_key() -> str:
    """A new random key for ``KEEL_JOURNAL_KEY`` / ``encryption_key=``: 32 bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def sealing_for(encryption_key: str | Sequence[str] | None) -> Sealing:
    """The `Sealing` of a store: keys from `encryption_key`, else from ``KEEL_JOURNAL_KEY``, else none."""
    given = encryption_key if encryption_key is not None else os.environ.get(KEY_ENV, "")
    texts = given.split(",") if isinstance(given, str) else list(given)
    keys = [_decoded(text.strip(), index) for index, text in enumerate(texts) if text.strip()]
    return Sealing(keys)


def _decoded(text: str, index: int) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:  # the message never shows the key
        raise ConfigError(
            f"journal key #{index + 1} (KEEL_JOURNAL_KEY or encryption_key=) must be 32 bytes in URL-safe base64, "
            f"as keel.store.new_journal_key() makes; it is {len(text)} characters that do not decode to 32 bytes"
        )
    return key


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"keel journal key id\0" + key).hexdigest()[:12]


class Sealing:
    """Seals content on its way into a store and opens it on its way out (identity without keys)."""

    __slots__ = ("_ciphers", "_sealer", "key_ids")

    def __init__(self, keys: Sequence[bytes]) -> None:
        """Keys in order: the first seals, every one opens (rotation)."""
        self.key_ids = tuple(_key_id(key) for key in keys)
        self._ciphers: dict[str, Any] = {}
        if keys:
            try:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError as exc:  # the `encryption` extra
                raise MissingDependencyError(
                    "encrypting the journal needs the `cryptography` package: pip install 'keel-agents[encryption]'"
                ) from exc
            self._ciphers = {kid: AESGCM(key) for kid, key in zip(self.key_ids, keys, strict=True)}
        self._sealer = self.key_ids[0] if keys else None

    @property
    def enabled(self) -> bool:
        """True when content is sealed on write."""
        return self._sealer is not None

    def seal_text(self, text: str, where: str) -> str:
        """`text` sealed for the place `where` names (associated data), or as is without a key."""
        if self._sealer is None:
            return text
        nonce = os.urandom(12)
        sealed = self._ciphers[self._sealer].encrypt(nonce, text.encode("utf-8", "surrogatepass"), where.encode())
        return f"{_PREFIX}{self._sealer}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open_text(self, value: str, where: str) -> str:
        """`value` opened when sealed (it must belong to `where`); a clear value as is."""
        if not value.startswith(_PREFIX):
            return value
        kid, _, body = value[len(_PREFIX) :].partition(":")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            given = ", ".join(self.key_ids) if self.key_ids else "none"
            raise JournalKeyError(
                f"{where.split(':', 1)[0]} content in this store is encrypted with journal key {kid}, which is not "
                f"among the keys given (ids: {given}): set KEEL_JOURNAL_KEY (or encryption_key=) to that key, with "
                "any newer key before it"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            opened: bytes = cipher.decrypt(raw[:12], raw[12:], where.encode())
        except Exception as exc:  # InvalidTag, a truncated value: never content
            raise JournalKeyError(
                f"encrypted content ({where}) does not open with journal key {kid}: it was altered or moved"
            ) from exc
        return opened.decode("utf-8", "surrogatepass")

    def seal_json(self, value: Any, where: str) -> Any:
        """A JSON value as ``{"_sealed": …}`` (None stays None: there is nothing to hide)."""
        if self._sealer is None or value is None:
            return value
        return {_FIELD: self.seal_text(_dumps(value), where)}

    def open_json(self, value: Any, where: str) -> Any:
        if isinstance(value, dict) and isinstance(value.get(_FIELD), str) and len(value) == 1:
            return json.loads(self.open_text(value[_FIELD], where))
        return value

    def seal_event(self, event: Event) -> Event:
        """`event` with its payload sealed, the kind's clear keys copied beside it."""
        if self._sealer is None or not event.payload:
            return event
        clear = CLEAR.get(event.kind, frozenset()) | _COMMON
        payload = {key: value for key, value in event.payload.items() if key in clear}
        payload[_FIELD] = self.seal_text(_dumps(event.payload), _event_place(event))
        return dataclasses.replace(event, payload=payload)

    def open_event(self, event: Event) -> Event:
        sealed = event.payload.get(_FIELD)
        if not isinstance(sealed, str):
            return event
        return dataclasses.replace(event, payload=json.loads(self.open_text(sealed, _event_place(event))))

    def seal_run(self, run: RunRecord) -> RunRecord:
        """`run` with its content (`_CONTENT`) sealed."""
        return run if self._sealer is None else _converted(run, f"run:{run.run_id}", self.seal_text, self.seal_json)

    def open_run(self, run: RunRecord) -> RunRecord:
        """`run` with its sealed content opened."""
        return _converted(run, f"run:{run.run_id}", self.open_text, self.open_json)

    def seal_review(self, item: ReviewItem) -> ReviewItem:
        """`item` with its content (`_CONTENT`) sealed."""
        return item if self._sealer is None else _converted(item, f"review:{item.id}", self.seal_text, self.seal_json)

    def seal_note(self, review_id: str, note: str) -> str:
        """A decider's note, sealed (an empty note stays empty)."""
        return self.seal_text(note, f"review:{review_id}:note") if note else note

    def open_review(self, item: ReviewItem) -> ReviewItem:
        """`item` with its sealed content opened."""
        return _converted(item, f"review:{item.id}", self.open_text, self.open_json)


_CONTENT: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {
    RunRecord: (("task", "reason"), ("output", "report")),
    ReviewItem: (("reason", "note"), ("arguments",)),
}
"""The fields of a run and of a review item that are content: its texts, and its JSON values."""

_Record = TypeVar("_Record", RunRecord, ReviewItem)


def _converted(
    record: _Record, place: str, text: Callable[[str, str], str], value: Callable[[Any, str], Any]
) -> _Record:
    """`record` with each content field sealed or opened (by `text` or `value`) for ``place:field``.

    One path for sealing and opening, so the two can never disagree on a field. A text that is None or empty
    stays as it is (there is nothing to hide), as `seal_json` keeps None.
    """
    texts, values = _CONTENT[type(record)]
    changes: dict[str, Any] = {name: text(got, f"{place}:{name}") for name in texts if (got := getattr(record, name))}
    changes |= {name: value(getattr(record, name), f"{place}:{name}") for name in values}
    return dataclasses.replace(record, **changes)


def _event_place(event: Event) -> str:
    return f"event:{event.run_id}:{event.seq}:{event.kind.value}"


def _dumps(value: Any) -> str:
    return dumps(value)  # the stores' own serializer: a sealed payload reads back as a clear one does
