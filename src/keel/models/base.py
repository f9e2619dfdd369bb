"""The provider-neutral model interface: messages in, text and/or tool calls out.

Every provider (OpenAI, Anthropic, the test doubles in `keel.testing`) implements `Model.request`. The rest of
Keel only ever sees these types, so a pattern never depends on a provider's wire format.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.models.pricing import Price, price_for
from keel.models.tokens import count_request_tokens

__all__ = [
    "AssistantMessage",
    "FinishReason",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "RequestUsage",
    "ToolCall",
    "ToolResultMessage",
    "ToolSpec",
    "UserMessage",
]

FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "error", "unknown"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call proposed by a model, exactly as proposed (it may name an unknown tool or carry bad JSON)."""

    id: str
    """The provider's id of this call; tool results refer to it."""
    name: str
    """The tool the model asked for."""
    arguments: str
    """The arguments as the raw JSON text the model produced; validated by the pipeline, not here."""


@dataclass(frozen=True, slots=True)
class UserMessage:
    """Input from the user (the task, or a correction Keel feeds back)."""

    content: str
    role: Literal["user"] = "user"


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """A model turn: text, tool calls, or both."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    role: Literal["assistant"] = "assistant"


@dataclass(frozen=True, slots=True)
class ToolResultMessage:
    """The result of one tool call, or the error the model must correct."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    role: Literal["tool"] = "tool"


Message = UserMessage | AssistantMessage | ToolResultMessage


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What a model is told about one tool."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything a model needs for one turn."""

    instructions: str
    """The system prompt."""
    messages: tuple[Message, ...]
    """The conversation so far, oldest first."""
    tools: tuple[ToolSpec, ...] = ()
    """The tools the model may call (the agent's allow-list)."""
    output_schema: dict[str, Any] | None = None
    """JSON schema the final answer must match, when the agent has typed output."""
    max_output_tokens: int = 1024
    """Hard cap on the response length; part of the worst-case budget reservation."""


@dataclass(frozen=True, slots=True)
class RequestUsage:
    """Tokens one model call consumed, as reported by the provider."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """One model turn, provider-neutral."""

    text: str | None = None
    """The text of the answer, if any."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Tool calls the model proposed, in order; run concurrently when more than one."""
    usage: RequestUsage = field(default_factory=RequestUsage)
    finish_reason: FinishReason = "stop"
    provider_id: str | None = None
    """The provider's id of the response, for cross-referencing its logs."""
    model_name: str = ""
    """The model that answered, as the provider names it."""
    reason: str | None = None
    """The model's stated reason for its decision, when it gave one (decision trace)."""
    confidence: float | None = None
    """The model's confidence in its answer (0..1), when known."""
    notes: tuple[str, ...] = ()
    """What the provider itself did to this response (e.g. a local model's repeated call refused), journaled
    with the call so that nothing the runtime decided on the model's behalf is invisible."""


class Model(abc.ABC):
    """A language model Keel can call. Subclass it to add a provider."""

    name: str
    """The model's Keel name, such as ``"openai:gpt-4o-mini"``; used for pricing and the journal."""

    @abc.abstractmethod
    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request; raise `keel.errors.ModelError` when the provider fails."""

    @property
    def price(self) -> Price | None:
        """USD per million input/output tokens, or None when unknown (then cost is recorded as 0)."""
        return price_for(self.name)

    @property
    def deterministic(self) -> bool:
        """Whether the same request gets the same answer (temperature 0): its responses may then be cached."""
        return False

    async def aclose(self) -> None:
        """Release what the model holds on the running event loop (HTTP connections); it reopens on next use.

        `Agent.run_sync` calls it before its event loop ends. Code that drives its own loop and is done with a
        model calls it too, or leaves the pool to the process's exit.
        """
        return None  # nothing held by default; HTTP providers override

    def count_input_tokens(self, request: ModelRequest) -> int:
        """An upper bound on the input tokens `request` will cost, computed before the call.

        The default is a conservative estimate; providers with a real tokenizer return an exact count plus
        the provider's per-message overhead. Budget checks rely on this never being an under-estimate.
        """
        return count_request_tokens(request, encoding=None)
