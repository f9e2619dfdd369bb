"""`ScriptedModel`: a model that plays a fixed script of turns, for deterministic tests of agent logic."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from keel.errors import ModelError
from keel.models.base import Model, ModelRequest, ModelResponse, RequestUsage, ToolCall
from keel.models.pricing import Price

__all__ = ["Fail", "ScriptedModel", "Turn", "call", "calls", "fail", "raw_call", "reply"]

_call_ids = itertools.count(1)
"""Placeholder ids for scripted calls; `ScriptedModel` renumbers them by turn and position when it plays them."""


@dataclass(frozen=True, slots=True)
class Fail:
    """A scripted turn that raises instead of answering."""

    error: BaseException


Turn = ModelResponse | Fail


def call(name: str, /, **arguments: Any) -> ModelResponse:
    """A turn in which the model calls one tool with `arguments`."""
    return calls((name, arguments))


def raw_call(name: str, arguments_json: str) -> ModelResponse:
    """A turn in which the model calls `name` with arguments exactly as given (e.g. broken JSON)."""
    return ModelResponse(
        tool_calls=(ToolCall(f"call_{next(_call_ids)}", name, arguments_json),), finish_reason="tool_calls"
    )


def calls(*pairs: tuple[str, dict[str, Any]] | ModelResponse) -> ModelResponse:
    """A turn with several tool calls at once (run concurrently): ``calls(("a", {...}), call("b", x=1))``."""
    tool_calls: list[ToolCall] = []
    for pair in pairs:
        if isinstance(pair, ModelResponse):
            tool_calls.extend(pair.tool_calls)
        else:
            name, arguments = pair
            tool_calls.append(ToolCall(f"call_{next(_call_ids)}", name, json.dumps(arguments)))
    return ModelResponse(tool_calls=tuple(tool_calls), finish_reason="tool_calls")


def reply(output: str | BaseModel | dict[str, Any] | list[Any], *, confidence: float | None = None) -> ModelResponse:
    """A final-answer turn: text, or an object serialized to JSON (for typed output)."""
    if isinstance(output, BaseModel):
        text = output.model_dump_json()
    elif isinstance(output, dict | list):
        text = json.dumps(output)
    else:
        text = output
    return ModelResponse(text=text, finish_reason="stop", confidence=confidence)


def fail(error: BaseException | str) -> Fail:
    """A turn that fails: a string becomes a non-retryable `ModelError`."""
    return Fail(ModelError(error) if isinstance(error, str) else error)


class ScriptedModel(Model):
    """Plays `script` one turn per request; records every request it received in `requests`.

    Args:
        script: the turns, built with `call`, `calls`, `raw_call`, `reply` and `fail`.
        usage: ``(input, output)`` tokens reported for every turn, or one pair per turn.
        price: USD per million ``(input, output)`` tokens, so cost limits can be tested (default free).
        name: the model name recorded in the journal.
    """

    def __init__(
        self,
        script: Sequence[Turn],
        *,
        usage: tuple[int, int] | Sequence[tuple[int, int]] = (100, 20),
        price: tuple[float, float] = (0.0, 0.0),
        name: str = "test:scripted",
    ) -> None:
        self.script = list(script)
        self.name = name
        self._usage = usage
        self._price = Price(*price)
        self.requests: list[ModelRequest] = []
        """Every request received, in order, for assertions."""

    @property
    def price(self) -> Price:
        """The scripted price."""
        return self._price

    def _usage_at(self, turn: int) -> tuple[int, int]:
        if len(self._usage) == 2 and all(isinstance(n, int) for n in self._usage):
            return self._usage  # type: ignore[return-value]
        per_turn: Sequence[tuple[int, int]] = self._usage  # type: ignore[assignment]
        return per_turn[min(turn, len(per_turn) - 1)]

    def count_input_tokens(self, request: ModelRequest) -> int:
        """The scripted input tokens of the next turn (exact, so budget tests are deterministic)."""
        return self._usage_at(len(self.requests))[0]

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Return the next scripted turn."""
        turn = len(self.requests)
        self.requests.append(request)
        if turn >= len(self.script):
            raise ModelError(f"ScriptedModel: the script has {len(self.script)} turns and request {turn + 1} came")
        step = self.script[turn]
        if isinstance(step, Fail):
            raise step.error
        input_tokens, output_tokens = self._usage_at(turn)
        output_tokens = min(output_tokens, request.max_output_tokens)
        # Ids by position, so the same script gives the same journal whatever ran before it.
        tool_calls = tuple(
            ToolCall(f"call_{turn + 1}_{index + 1}", c.name, c.arguments) for index, c in enumerate(step.tool_calls)
        )
        return ModelResponse(
            text=step.text,
            tool_calls=tool_calls,
            usage=RequestUsage(input_tokens, output_tokens),
            finish_reason=step.finish_reason,
            provider_id=f"scripted-{turn + 1}",
            model_name=self.name,
            reason=step.reason,
            confidence=step.confidence,
        )
