"""Plumbing shared by the HTTP providers: credentials, the test switch, and error translation.

Both official SDKs raise their own exception trees; Keel's pipeline only understands `ModelError` with a
`retryable` flag (E1: retry 429, 5xx, timeouts and connection failures; never retry a request the provider
rejected as wrong). The translation lives here once so that both providers classify errors the same way and
neither can leak an API key into a message: provider error bodies sometimes echo a (masked) key back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import keel.models as _models
from keel.errors import ConfigError, MissingCredentialsError, ModelError, ModelRequestsDisabledError

__all__ = [
    "PLACEHOLDER_API_KEY",
    "connection_error",
    "ensure_requests_allowed",
    "json_schema_instruction",
    "redact",
    "resolve_credentials",
    "status_error",
]

PLACEHOLDER_API_KEY = "keel-no-key"
"""Sent to a custom base URL when no key is set: local servers (Ollama, vLLM, llama.cpp) ignore it, but the
SDKs refuse to build a client without one."""

_MAX_DETAIL_CHARS = 300
_MIN_SECRET_CHARS = 8
"""Shorter keys (dummy keys for local servers) are not replaced verbatim, which would mangle the message."""
_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_*\-]{6,}")
_STATUS_LABELS = {
    400: "bad request",
    401: "authentication failed",
    402: "payment required",
    403: "permission denied",
    404: "not found (check the model name and base URL)",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    429: "rate limited",
    529: "overloaded",
}
_NOT_RETRYABLE_CODES = frozenset(
    {"insufficient_quota", "billing_error", "contract_spend_limit_reached", "enforced_spend_limit_reached"}
)
"""Error codes that arrive as a 429 but will not clear by waiting (the account is out of credit)."""


def ensure_requests_allowed(model_name: str) -> None:
    """Raise `ModelRequestsDisabledError` when `keel.models.ALLOW_MODEL_REQUESTS` is False.

    The flag is read at call time so that a test suite can flip it after Keel is imported.
    """
    if not _models.ALLOW_MODEL_REQUESTS:
        raise ModelRequestsDisabledError(
            f"{model_name}: real model requests are disabled (keel.models.ALLOW_MODEL_REQUESTS is False); "
            "use keel.testing.ScriptedModel or FunctionModel in tests"
        )


def json_schema_instruction(instructions: str, schema: Mapping[str, Any]) -> str:
    """`instructions` plus a request for a final answer in JSON matching `schema`.

    Used where the provider cannot enforce the schema itself (Anthropic; OpenAI when tools are present,
    because a forced JSON response format would stop the model from calling tools). The pipeline validates
    the answer against the schema either way.
    """
    ask = (
        "When you give your final answer, reply with only a JSON value (no prose, no code fence) that "
        f"matches this JSON schema: {json.dumps(schema, sort_keys=True)}"
    )
    return f"{instructions}\n\n{ask}" if instructions else ask


def resolve_credentials(
    *, api_key: str | None, base_url: str | None, key_env: str, base_url_env: str
) -> tuple[str, str | None]:
    """The API key and base URL to use, from the arguments first and the environment second.

    Raises:
        MissingCredentialsError: no key anywhere and no custom base URL (a hosted API always needs a key).
        ConfigError: the key contains whitespace or non-ASCII characters (a paste gone wrong).
    """
    resolved_url = base_url or os.environ.get(base_url_env) or None
    key = api_key or os.environ.get(key_env) or None
    if key is not None:
        if not key.isascii() or any(c.isspace() for c in key):
            # A pasted key with a curly quote or a newline would fail while the request is built, looking
            # like a provider error; say what is wrong instead (without showing the key).
            raise ConfigError(f"the API key ({key_env} or api_key=) contains spaces or non-ASCII characters")
        return key, resolved_url
    if resolved_url is not None:
        return PLACEHOLDER_API_KEY, resolved_url
    raise MissingCredentialsError(
        f"{key_env} is not set; set it or pass api_key=..., or set {base_url_env} for a local server"
    )


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` and anything shaped like an API key (``sk-…``, also masked) replaced."""
    if secret and len(secret) >= _MIN_SECRET_CHARS and secret != PLACEHOLDER_API_KEY:
        text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


def _error_fields(body: object) -> tuple[str | None, str | None]:
    """The message and code of a provider error body (OpenAI's unwrapped or Anthropic's wrapped shape)."""
    if not isinstance(body, Mapping):
        return None, None
    inner = body.get("error")
    error = inner if isinstance(inner, Mapping) else body
    message = error.get("message")
    details = error.get("details")
    specific = details.get("error_code") if isinstance(details, Mapping) else None
    code = specific or error.get("code") or error.get("type")
    return (
        message if isinstance(message, str) else None,
        code if isinstance(code, str) else None,
    )


def _is_retryable(status: int, code: str | None, headers: Mapping[str, str]) -> bool:
    # The providers' own hint wins, as their SDKs also obey it.
    hint = headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    if code in _NOT_RETRYABLE_CODES:
        return False
    return status in (408, 409, 429) or status >= 500


def status_error(
    model_name: str,
    *,
    status: int,
    body: object,
    headers: Mapping[str, str],
    fallback: str,
    secret: str | None,
    key_env: str,
) -> ModelError:
    """Translate an HTTP error response into a `ModelError` with a clear, secret-free message."""
    detail, code = _error_fields(body)
    label = _STATUS_LABELS.get(status, "server error" if status >= 500 else "request failed")
    parts = [f"{model_name}: {label} (HTTP {status}"]
    if code:
        parts.append(f", {code}")
    retry_after = headers.get("retry-after")
    if retry_after:  # seconds, or an HTTP date
        parts.append(f", retry after {retry_after}s" if retry_after.isdigit() else f", retry after {retry_after}")
    request_id = headers.get("x-request-id") or headers.get("request-id")
    if request_id:
        parts.append(f", request id {request_id}")
    parts.append(")")
    if status == 401:
        parts.append(f"; check {key_env}")
    text = redact((detail or fallback).strip(), secret)
    if text:
        parts.append(f": {text[:_MAX_DETAIL_CHARS]}")
    return ModelError(
        redact("".join(parts), secret),
        retryable=_is_retryable(status, code, headers),
        status_code=status,
        retry_after_s=_seconds(retry_after),
    )


def _seconds(retry_after: str | None) -> float | None:
    """``retry-after`` in seconds; an HTTP-date form is left to the message (rare from LLM APIs)."""
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None


def connection_error(model_name: str, *, timed_out: bool, timeout_s: float, base_url: str) -> ModelError:
    """A retryable `ModelError` for a request that never got an HTTP response."""
    parts = urlsplit(base_url)
    if parts.username or parts.password:  # never show credentials embedded in the URL
        base_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if timed_out:
        message = f"{model_name}: request timed out after {timeout_s:g}s ({base_url})"
    else:
        message = f"{model_name}: could not connect to {base_url}"
    return ModelError(message, retryable=True)
