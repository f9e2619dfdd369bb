"""What the PII detectors share: the span type and the labels read in front of a candidate value."""

from __future__ import annotations

import re

__all__ = ["ID_LABEL", "Span", "has_label"]

Span = tuple[int, int]
"""Start and end offsets of one detected value."""

ID_LABEL = re.compile(
    r"(?:\b(?:order|invoice|ref|reference|tracking|shipment|parcel|ticket|case|sku|serial|confirmation|"
    r"booking|timestamp|imei|po|id|rma|account|acct|customer|member|policy|transaction)\b\s*"
    r"(?:number|num|no\.?|id)?\s*(?:is\s+|was\s+)?[:#]?\s*|#\s*)$",
    re.IGNORECASE,
)
"""A label right before a number that makes it an identifier, not a phone or card number."""


def has_label(text: str, start: int, label: re.Pattern[str], window: int = 40) -> bool:
    """Whether `label` occurs in the `window` characters before `start` (right before, if anchored by ``$``)."""
    return label.search(text, max(0, start - window), start) is not None
