"""Cache keys: a stable SHA-256 of arbitrary arguments (`cache_key`), the same in every process."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from typing import Any

from pydantic import BaseModel

__all__ = ["cache_key"]


def _canonical(obj: Any) -> Any:
    """`obj` as plain JSON data, deterministically: same value, same result, whatever the order of dicts and sets.

    A structure that contains itself ends in `RecursionError` (`cache_key` then gives up on it).
    """
    if obj is None or isinstance(obj, str | int | float):  # bool is an int
        return obj
    if isinstance(obj, dict):
        return _canonical_dict(obj)
    if isinstance(obj, list | tuple):
        return [_canonical(item) for item in obj]
    if isinstance(obj, set | frozenset):
        return sorted((_canonical(item) for item in obj), key=_dumps)
    if isinstance(obj, bytes | bytearray):
        return obj.hex()
    if isinstance(obj, BaseModel):
        return _canonical(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _canonical_dict({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    return f"{type(obj).__qualname__}:{obj!r}"


def _canonical_dict(obj: dict[Any, Any]) -> dict[str, Any]:
    """A dict with string keys: other keys become ``str(key)``, or ``Type:repr`` when that string is taken."""
    out = {key: _canonical(value) for key, value in obj.items() if isinstance(key, str)}
    others = [
        (str(key), type(key).__qualname__, repr(key), value) for key, value in obj.items() if not isinstance(key, str)
    ]
    for text, kind, rep, value in sorted(others, key=lambda other: other[:3]):
        name = text if text not in out else f"{kind}:{rep}"
        while name in out:
            name += "'"
        out[name] = _canonical(value)
    return out


def _dumps(data: Any) -> str:
    """Canonical JSON text of plain data: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(kind: str, *parts: object) -> str:
    """A stable key for `parts`: ``"<kind>:"`` and the SHA-256 (hex) of their canonical JSON.

    Equal inputs give the same key in every process: dicts in a different order, and sets in any order,
    give the same key. Non-JSON values are converted first: sets to sorted lists, bytes to hex, pydantic
    models to ``model_dump(mode="json")``, dataclasses to their fields, dict keys that are not strings to
    ``str(key)``, anything else to ``"<type qualname>:<repr>"`` (so a repr that shows an object's address
    gives a key that holds within one process only). Tuples and lists are alike (JSON arrays).

    Never raises: arguments with no stable form (nested too deeply or cyclic, a ``repr`` or ``model_dump`` that
    fails) get a fresh random key, a miss every time. Arguments of many megabytes are fine (hashing is linear).
    """
    try:
        text = _dumps(_canonical(list(parts)))
    except Exception:  # too deep or cyclic (RecursionError), an int too long to print, a repr or model_dump that fails
        return f"{kind}:uncacheable-{uuid.uuid4().hex}"
    return f"{kind}:{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}"
