"""Models: the provider-neutral `Model` interface, the providers, pricing and token counting.

Name a model as ``"provider:model"``: ``openai:<model>`` (official `openai` SDK; honours ``OPENAI_BASE_URL``
and ``OPENAI_API_KEY``, so any OpenAI-compatible server works), ``anthropic:<model>`` (official `anthropic`
SDK) or ``local:<name-or-path>`` (a GGUF model run in-process by llama.cpp; ``local:default`` is bundled with
the ``local`` extra). `infer_model` turns a name into a `Model`; an instance passes through unchanged.
"""

from __future__ import annotations

from keel.errors import UnknownModelError
from keel.models.base import (
    AssistantMessage,
    FinishReason,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    RequestUsage,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from keel.models.pricing import Price, load_pricing, price_for, set_price

__all__ = [
    "ALLOW_MODEL_REQUESTS",
    "AssistantMessage",
    "FinishReason",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Price",
    "RequestUsage",
    "ToolCall",
    "ToolResultMessage",
    "ToolSpec",
    "UserMessage",
    "infer_model",
    "load_pricing",
    "price_for",
    "set_price",
]

ALLOW_MODEL_REQUESTS = True
"""Set to False (as Keel's own test suite does) to make any real provider request raise
`keel.errors.ModelRequestsDisabledError` instead of reaching the network."""

PROVIDERS = ("openai", "anthropic", "local")


def infer_model(model: Model | str) -> Model:
    """Resolve ``"provider:model"`` to a `Model`; a `Model` instance is returned as is."""
    if isinstance(model, Model):
        return model
    if not isinstance(model, str) or ":" not in model:
        raise UnknownModelError(
            f"model {model!r} must be a Model instance or a name like 'openai:gpt-4o-mini' "
            f"(known providers: {', '.join(PROVIDERS)})"
        )
    provider, _, name = model.partition(":")
    if not name:
        raise UnknownModelError(f"model {model!r} names no model after '{provider}:'")
    if provider == "openai":
        from keel.models.openai import OpenAIModel

        return OpenAIModel(name)
    if provider == "anthropic":
        from keel.models.anthropic import AnthropicModel

        return AnthropicModel(name)
    if provider == "local":
        from keel.models.local import LocalModel

        return LocalModel(name)
    raise UnknownModelError(
        f"unknown model provider {provider!r} in {model!r}; known providers: {', '.join(PROVIDERS)}"
    )
