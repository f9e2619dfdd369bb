"""Anthropic's Claude models through the official `anthropic` SDK (Messages API).

``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` are honoured; with a custom base URL and no key, a
placeholder key is sent (gateways and compatible servers that do their own auth ignore it). The key is always
passed explicitly, so the SDK never falls back to reading credential profiles from disk.

Input tokens are estimated, not counted: Claude's tokenizer is not available offline, and Keel does not spend
a network round trip (the count_tokens endpoint) on a budget check. The estimate errs high, including the
tool-use system prompt Anthropic adds whenever tools are declared.
"""

from __future__ import annotations

import anthropic
from anthropic.types import Message

from keel.models._anthropic_wire import message_params, to_model_response
from keel.models._sdk_model import SDKErrors, SDKModel
from keel.models.base import ModelRequest, ModelResponse
from keel.models.tokens import count_request_tokens

__all__ = ["AnthropicModel", "tool_use_prompt_tokens"]


def tool_use_prompt_tokens(model_name: str) -> int:
    """Input tokens Anthropic adds to a request that declares tools (``tool_choice`` auto).

    Anthropic publishes the figure per model: 346 for the Claude 4 family, 3.7 and 3.5 Sonnet, fewer for the
    other 3.x models except the retired Claude 3 Opus (530). Counting it keeps a budget check from
    under-estimating.
    """
    return 530 if model_name.startswith("claude-3-opus") else 346


class AnthropicModel(SDKModel[anthropic.AsyncAnthropic]):
    """A Claude model behind the Anthropic Messages API, named ``anthropic:<model_name>`` in Keel.

    Args:
        model_name: the provider's model name, such as ``"claude-sonnet-4-5"``.
        api_key: the API key; defaults to ``ANTHROPIC_API_KEY``.
        base_url: the API root; defaults to ``ANTHROPIC_BASE_URL``, then Anthropic.
        http_client: an `httpx2.AsyncClient` to send requests with (proxies, custom transports, tests).
        max_retries: retries the SDK makes itself, unseen by the journal; 0 by default, so that every attempt is
            one of Keel's own (`Agent(retry=RetryPolicy(...))`): journaled, accounted and bounded by the run.
        timeout_s: the timeout of one HTTP attempt, in seconds.

    Raises:
        MissingCredentialsError: no API key and no custom base URL.
        ConfigError: a negative `max_retries` or a non-positive `timeout_s`.
    """

    provider = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    sdk_errors = SDKErrors(
        status=anthropic.APIStatusError,
        connection=anthropic.APIConnectionError,
        timeout=anthropic.APITimeoutError,
        validation=anthropic.APIResponseValidationError,
        base=anthropic.AnthropicError,
    )

    def _new_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(**self._client_options())

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send `request` as one Messages API call.

        Raises:
            ModelRequestsDisabledError: `keel.models.ALLOW_MODEL_REQUESTS` is False.
            ModelError: the provider failed or answered with nothing usable; ``retryable`` says whether
                trying again may help (529 overloaded, like 429 and 5xx, is retryable).
        """
        params = message_params(request)
        message = await self._send(lambda client: client.messages.create(model=self.model_name, **params), Message)
        return to_model_response(message, self.name)

    def count_input_tokens(self, request: ModelRequest) -> int:
        """A conservative estimate: cl100k count times a safety factor, plus overheads.

        With tools, Anthropic also bills the tool-use system prompt it adds to every such request.
        """
        estimate = count_request_tokens(request, None)
        return estimate + tool_use_prompt_tokens(self.model_name) if request.tools else estimate
