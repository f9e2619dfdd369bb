"""Keel's exceptions: programming and configuration errors, never run outcomes.

An exhausted budget, a rejected tool call or a failing tool is a *run outcome*: it ends up in
`RunResult.status` and `RunResult.report`, never as an exception to the caller. The exceptions below are
for mistakes a developer or operator must fix.

    KeelError
    ├── ConfigError            bad configuration (agent, budget, pricing, environment)
    │   ├── UnknownModelError  a model name Keel cannot resolve ("provider:model")
    │   ├── MissingCredentialsError  a provider's API key is not set
    │   ├── MissingDependencyError   an optional extra is not installed (the message names the install command)
    │   └── ModelFileError     a local model file that does not exist or is not a usable GGUF model
    ├── ToolDefinitionError    a function that cannot become a tool (unsupported parameter types, …)
    ├── StoreError             the store cannot be opened, written or migrated
    │   ├── StoreNotFoundError the store does not exist (and was opened without creating it)
    │   ├── StoreVersionError  the store was written by a newer Keel
    │   └── JournalKeyError    encrypted content and no key (or the wrong one) to open it
    ├── UnknownRunError        no run with this id in the store
    ├── ConflictError          a concurrent update lost a version check
    ├── ReviewError            an unknown or already decided review item
    ├── ResumeError            a run that cannot be resumed (finished, still waiting for a review, claimed)
    ├── CacheError             a cache backend cannot be reached or answered wrongly (runs degrade to no cache)
    ├── QueryError             a malformed filter or parameter of a report or of the dashboard (also a ValueError)
    └── ModelRequestsDisabledError  a real provider was called while `keel.models.ALLOW_MODEL_REQUESTS` is False

`ModelError` is raised by providers inside a run (HTTP failure, malformed response); the pipeline turns it
into a journaled run outcome, so a caller only sees it when calling a `Model` directly.
"""

from __future__ import annotations

__all__ = [
    "TROUBLESHOOTING",
    "CacheError",
    "ConfigError",
    "ConflictError",
    "JournalKeyError",
    "KeelError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "ModelError",
    "ModelFileError",
    "ModelRequestsDisabledError",
    "QueryError",
    "ResumeError",
    "ReviewError",
    "StoreError",
    "StoreNotFoundError",
    "StoreVersionError",
    "ToolDefinitionError",
    "UnknownModelError",
    "UnknownRunError",
    "help_page",
]

TROUBLESHOOTING = "docs/troubleshooting.md"
"""The page that explains each error, one section per class (the CLI and the dashboard point at it)."""


class KeelError(Exception):
    """Base class of every error Keel raises.

    Each carries a note naming the section of ``docs/troubleshooting.md`` that explains it (`help_page`): Python
    shows it under the traceback, without changing the message itself.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.add_note(f"help: {help_page(self)}")


class ConfigError(KeelError):
    """The configuration is invalid: fix the code or the environment."""


class UnknownModelError(ConfigError):
    """A model name that no provider handles, such as ``"openia:gpt-4o"``."""


class MissingCredentialsError(ConfigError):
    """A provider needs an API key that is not set."""


class MissingDependencyError(ConfigError):
    """A feature needs an optional extra that is not installed, such as ``keel-agents[local]``."""


class ModelFileError(ConfigError):
    """A local model file is missing, unreadable, not in GGUF format, or has no chat template."""


class ToolDefinitionError(KeelError):
    """A function cannot be turned into a tool, e.g. a parameter type with no JSON schema."""


class StoreError(KeelError):
    """The store cannot be opened, read or written."""


class StoreNotFoundError(StoreError):
    """A store opened for reading only does not exist yet.

    Attributes:
        path: where the store was looked for.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class StoreVersionError(StoreError):
    """The store's schema is newer than this version of Keel understands."""


class JournalKeyError(StoreError):
    """The store holds encrypted content that the journal keys given cannot open (none given, another key, altered).

    Nothing is lost: the content stays in the store, encrypted, until read with the right key.
    """


class UnknownRunError(KeelError):
    """No run with the given id exists in the store."""


class ConflictError(KeelError):
    """A concurrent writer changed the record first (version check failed)."""


class ReviewError(KeelError):
    """A review item is unknown or was already decided."""


class ResumeError(KeelError):
    """A run cannot be resumed: it is not paused, a review item is still pending, or another process took it."""


class CacheError(KeelError):
    """A cache backend failed (Redis down, a store that cannot be written); a run then goes on without the cache."""


class QueryError(KeelError, ValueError):
    """A malformed filter or parameter (a window, a status, a page offset): the message says what is accepted."""


class ModelRequestsDisabledError(KeelError):
    """A real provider was asked to make a request while model requests are disabled (tests)."""


class ModelError(KeelError):
    """A provider call failed or returned something unusable.

    Attributes:
        retryable: whether trying again may succeed (429, 5xx, timeouts, connection errors).
        status_code: the HTTP status, when there was one.
        retry_after_s: how long the provider asked us to wait before trying again (``retry-after``), if it did.
        tokens: (input, output) tokens the failed call consumed, when known (a local model stopped mid-reply);
            the pipeline charges them, so a failing call still counts against the budget.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        tokens: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.tokens = tokens


def help_page(error: BaseException) -> str:
    """Where the troubleshooting page explains `error`: its class's section, ``docs/troubleshooting.md#storeerror``."""
    for cls in type(error).__mro__:
        if issubclass(cls, KeelError) and cls.__module__ == __name__:
            return f"{TROUBLESHOOTING}#{cls.__name__.lower()}"
    return TROUBLESHOOTING
