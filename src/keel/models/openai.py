"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp), through the official `openai` SDK.

``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are honoured as the SDK honours them. With a custom base URL and no
key, a placeholder key is sent, since local servers ignore it.

The response-length cap goes out as ``max_completion_tokens`` to OpenAI itself (its reasoning models reject
the deprecated ``max_tokens``) and as ``max_tokens`` to any other base URL: every OpenAI-compatible server
accepts ``max_tokens``, while some (Ollama, older llama.cpp and llamafile) silently ignore
``max_completion_tokens``, which would lift the hard cap a budget reservation relies on.

Whenever tools are declared, ``tool_choice`` goes out as ``"auto"``: that is OpenAI's default anyway, but
llama-cpp-python's server ignores the tools unless it is sent.
"""

from __future__ import annotations

from urllib.parse import urlparse

import httpx2
import openai
from openai.types.chat import ChatCompletion

from keel.errors import ConfigError
from keel.models._openai_wire import MaxTokensParam, chat_params, to_model_response
from keel.models._sdk_model import SDKErrors, SDKModel
from keel.models.base import ModelRequest, ModelResponse
from keel.models.tokens import count_request_tokens, encoding_for_model

__all__ = ["OpenAIModel"]

_OFFICIAL_HOSTS = ("api.openai.com",)
_MAX_TEMPERATURE = 2.0


class OpenAIModel(SDKModel[openai.AsyncOpenAI]):
    """A chat model behind the OpenAI Chat Completions API, named ``openai:<model_name>`` in Keel.

    Args:
        model_name: the provider's model name, such as ``"gpt-4o-mini"`` or ``"llama3.1:8b"`` (Ollama).
        api_key: the API key; defaults to ``OPENAI_API_KEY``.
        base_url: the API root, such as ``"http://localhost:11434/v1"``; defaults to ``OPENAI_BASE_URL``,
            then OpenAI.
        http_client: an `httpx2.AsyncClient` to send requests with (proxies, custom transports, tests).
        max_retries: retries the SDK makes itself, unseen by the journal; 0 by default, so that every attempt is
            one of Keel's own (`Agent(retry=RetryPolicy(...))`): journaled, accounted and bounded by the run.
        timeout_s: the timeout of one HTTP attempt, in seconds.
        temperature: the sampling temperature, 0 to 2; 0 makes the answers (nearly) deterministic, which
            small local models need to call tools reliably. Sent only when set: the server's default otherwise
            (OpenAI's reasoning models accept no other value than their default).
        seed: a sampling seed, for reproducible answers where the server supports it (OpenAI: best effort;
            llama.cpp, vLLM: honoured). Sent only when set.

    Raises:
        MissingCredentialsError: no API key and no custom base URL.
        ConfigError: a negative `max_retries`, a non-positive `timeout_s` or a `temperature` outside 0..2.
    """

    provider = "openai"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    sdk_errors = SDKErrors(
        status=openai.APIStatusError,
        connection=openai.APIConnectionError,
        timeout=openai.APITimeoutError,
        validation=openai.APIResponseValidationError,
        base=openai.OpenAIError,
    )

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 0,
        timeout_s: float = 60.0,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> None:
        if temperature is not None and not 0.0 <= temperature <= _MAX_TEMPERATURE:
            raise ConfigError(f"temperature must be between 0 and {_MAX_TEMPERATURE:g}, got {temperature}")
        super().__init__(
            model_name,
            api_key=api_key,
            base_url=base_url,
            http_client=http_client,
            max_retries=max_retries,
            timeout_s=timeout_s,
        )
        self._temperature = temperature
        self._seed = seed

    @property
    def max_tokens_param(self) -> MaxTokensParam:
        """The body field used for `ModelRequest.max_output_tokens` (see the module docstring for why)."""
        if self._base_url is None or urlparse(self._base_url).hostname in _OFFICIAL_HOSTS:
            return "max_completion_tokens"
        return "max_tokens"

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**self._client_options())

    @property
    def deterministic(self) -> bool:
        """True at temperature 0: its responses may be cached (`CachePolicy`)."""
        return self._temperature == 0

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send `request` as one chat completion.

        Raises:
            ModelRequestsDisabledError: `keel.models.ALLOW_MODEL_REQUESTS` is False.
            ModelError: the provider failed or answered with nothing usable; ``retryable`` says whether
                trying again may help.
        """
        params = chat_params(
            request, max_tokens_param=self.max_tokens_param, temperature=self._temperature, seed=self._seed
        )
        completion = await self._send(
            lambda client: client.chat.completions.create(model=self.model_name, **params), ChatCompletion
        )
        return to_model_response(completion, self.name)

    def count_input_tokens(self, request: ModelRequest) -> int:
        """Exact BPE count plus overheads for known OpenAI models; a conservative estimate otherwise."""
        return count_request_tokens(request, encoding_for_model(self.name))
