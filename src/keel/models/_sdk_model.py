"""`SDKModel`: what the OpenAI and Anthropic providers share.

Credentials, limits, one SDK client per event loop, and one translation of the SDK's exceptions into
`ModelError`, so both providers classify failures the same way.
"""

from __future__ import annotations

import abc
import asyncio
import json
import math
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import httpx2

from keel.errors import ConfigError, ModelError
from keel.models._provider import connection_error, ensure_requests_allowed, redact, resolve_credentials, status_error
from keel.models.base import Model
from keel.observe.logs import redact_provider_logs

__all__ = ["SDKErrors", "SDKModel"]

redact_provider_logs()  # the SDKs log request content at DEBUG: never in clear


class _SDKClient(Protocol):
    """What Keel reads from an SDK client: the API root, for connection-error messages."""

    @property
    def base_url(self) -> httpx2.URL: ...


class _StatusError(Protocol):
    """The fields of an SDK's HTTP-status exception (``APIStatusError`` in both official SDKs)."""

    message: str
    body: object
    status_code: int
    response: httpx2.Response


class _Closable(Protocol):
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_SDKClient)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SDKErrors:
    """The exception classes of one provider SDK, which `SDKModel._send` translates into `ModelError`."""

    status: type[Exception]
    """An HTTP error response; instances carry ``status_code``, ``body``, ``message`` and ``response``."""
    connection: type[Exception]
    """No HTTP response at all (refused, reset, timed out)."""
    timeout: type[Exception]
    """The subclass of `connection` raised on a timeout."""
    validation: type[Exception]
    """A response that does not fit the SDK's types."""
    base: type[Exception]
    """The root of the SDK's exception tree: anything else it raises."""


class SDKModel(Model, Generic[ClientT], abc.ABC):
    """A model reached through an official provider SDK; subclasses build the client and map the wire."""

    provider: ClassVar[str]
    """The prefix of the model's Keel name, e.g. ``"openai"``."""
    key_env: ClassVar[str]
    """The environment variable holding the API key."""
    base_url_env: ClassVar[str]
    """The environment variable holding a custom API root."""
    sdk_errors: ClassVar[SDKErrors]
    """The SDK's exception classes, translated into `ModelError` by `_send`."""

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 0,
        timeout_s: float = 60.0,
    ) -> None:
        if max_retries < 0 or not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigError(f"max_retries must be >= 0 and timeout_s > 0, got {max_retries}, {timeout_s}")
        self.model_name = model_name
        """The model as the provider names it."""
        self.name = f"{self.provider}:{model_name}"
        self._api_key, self._base_url = resolve_credentials(
            api_key=api_key, base_url=base_url, key_env=self.key_env, base_url_env=self.base_url_env
        )
        self._http_client = http_client
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._client: ClientT | None = None
        """The one client built over a caller's own `http_client`."""
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = weakref.WeakKeyDictionary()
        """SDK-owned clients, one per event loop (each connection pool belongs to the loop it was opened on)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r}, base_url={self._base_url!r})"

    @abc.abstractmethod
    def _new_client(self) -> ClientT:
        """Build the SDK client, from `_client_options`."""

    def _client_options(self) -> dict[str, Any]:
        """The constructor arguments both official SDK clients take, the same way."""
        return {
            "api_key": self._api_key,
            "base_url": self._base_url,
            "http_client": self._http_client,
            "max_retries": self._max_retries,
            "timeout": self._timeout_s,
            # Validate every response against the SDK's types: a 200 with the wrong shape (a proxy's error
            # envelope, a half-compatible server) must become a retryable ModelError, not an AttributeError.
            "_strict_response_validation": True,
        }

    def _sdk(self) -> ClientT:
        # An SDK-owned connection pool is bound to the event loop it was first used on, and `run_sync` starts
        # a new loop per call (threads may each run their own): one client per loop. A caller's own
        # http_client is theirs to manage, so it gets one client for its lifetime.
        if self._http_client is not None:
            if self._client is None:
                self._client = self._new_client()
            return self._client
        loop = asyncio.get_running_loop()
        client = self._loop_clients.get(loop)
        if client is None:
            client = self._loop_clients[loop] = self._new_client()
        return client

    async def aclose(self) -> None:
        """Close the SDK-owned client of the running loop (other loops' clients and a caller's own are left)."""
        client = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await cast(_Closable, client).close()

    async def _send(self, call: Callable[[ClientT], Awaitable[object]], expect: type[R]) -> R:
        """Await `call` on this loop's SDK client, translating the SDK's exceptions into `ModelError`.

        Raises:
            ModelRequestsDisabledError: `keel.models.ALLOW_MODEL_REQUESTS` is False.
            ModelError: the provider failed; ``retryable`` says whether trying again may help.
        """
        ensure_requests_allowed(self.name)
        client = self._sdk()
        errors = self.sdk_errors
        # `from None` below: the SDK's exception text may echo the (masked) key or request details back;
        # Keel's message is redacted, and the SDK's must not reach a traceback either.
        try:
            result = await call(client)
        except errors.status as exc:
            failure = cast(_StatusError, exc)
            raise status_error(
                self.name,
                status=failure.status_code,
                body=failure.body,
                headers=failure.response.headers,
                fallback=failure.message,
                secret=self._api_key,
                key_env=self.key_env,
            ) from None
        except errors.connection as exc:
            raise connection_error(
                self.name,
                timed_out=isinstance(exc, errors.timeout),
                timeout_s=self._timeout_s,
                base_url=str(client.base_url),
            ) from exc
        except (errors.validation, json.JSONDecodeError):  # a 200 whose body is not the API's (a proxy's page)
            raise ModelError(f"{self.name}: malformed response from the provider", retryable=True) from None
        except errors.base as exc:
            raise ModelError(f"{self.name}: {redact(str(exc), self._api_key)}") from None
        if not isinstance(result, expect):  # the SDKs hand back non-object JSON (a bare string) unvalidated
            kind = type(result).__name__
            raise ModelError(f"{self.name}: malformed response from the provider ({kind})", retryable=True)
        return result
