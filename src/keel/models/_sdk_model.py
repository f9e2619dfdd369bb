"""`SDKModel`: what the OpenAI and Anthropic providers share — credentials, limits, one SDK client per loop."""

from __future__ import annotations

import abc
import asyncio
from typing import ClassVar, Generic, TypeVar

import httpx2

from keel.errors import ConfigError
from keel.models._provider import resolve_credentials
from keel.models.base import Model

__all__ = ["SDKModel"]

ClientT = TypeVar("ClientT")


class SDKModel(Model, Generic[ClientT], abc.ABC):
    """A model reached through an official provider SDK; subclasses build the client and map the wire."""

    provider: ClassVar[str]
    """The prefix of the model's Keel name, e.g. ``"openai"``."""
    key_env: ClassVar[str]
    """The environment variable holding the API key."""
    base_url_env: ClassVar[str]
    """The environment variable holding a custom API root."""

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 2,
        timeout_s: float = 60.0,
    ) -> None:
        if max_retries < 0 or timeout_s <= 0:
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
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r}, base_url={self._base_url!r})"

    @abc.abstractmethod
    def _new_client(self) -> ClientT:
        """Build the SDK client from the resolved credentials and limits."""

    def _sdk(self) -> ClientT:
        # An SDK-owned connection pool is bound to the event loop it was first used on, and `run_sync`
        # starts a new loop per call: build one client per loop. A caller's own http_client is theirs to manage.
        loop = asyncio.get_running_loop()
        if self._client is None or (self._http_client is None and self._client_loop is not loop):
            self._client = self._new_client()
            self._client_loop = loop
        return self._client
