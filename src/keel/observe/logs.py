"""Keeping personal data and secrets out of the logs of the libraries Keel drives for its providers.

At DEBUG, a provider SDK logs each request's options (the Anthropic SDK: the whole ``json_data``, so the task,
the conversation and tool results). Keel's own code never logs content; for these loggers it attaches a filter
that replaces every message by its `redact_pii` form before any handler sees it. The filter costs nothing unless
DEBUG is on for them, since a logger below its level never builds the record.
"""

from __future__ import annotations

import logging
import threading

from keel.guardrails.pii import redact_pii

__all__ = ["PROVIDER_LOGGERS", "RedactingFilter", "redact_provider_logs"]

PROVIDER_LOGGERS = ("anthropic._base_client", "openai._base_client", "openai.agents", "mcp.client")
"""Loggers that write request or response content at DEBUG (a filter applies to its own logger only, not to the
logger's children, so each is named)."""

_LOCK = threading.Lock()


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, arguments included, with personal data and secrets replaced by their kind."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        message = record.getMessage()
        cleaned = redact_pii(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_provider_logs(names: tuple[str, ...] = PROVIDER_LOGGERS) -> None:
    """Attach one `RedactingFilter` to each logger of `names` (again is harmless: each gets at most one)."""
    with _LOCK:
        for name in names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())
