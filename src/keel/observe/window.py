"""Time windows as people type them: ``90s``, ``30m``, ``24h``, ``7d`` (CLI flags, dashboard filters)."""

from __future__ import annotations

import re

from keel.errors import QueryError

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> float:
    """``"24h"`` → 86400.0 seconds; `QueryError` (a `ValueError`) naming the accepted forms for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise QueryError(f"{text!r} is not a duration: write a number and a unit, such as 90s, 30m, 24h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]
