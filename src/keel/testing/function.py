"""`FunctionModel`: a model whose every response is computed by your function from the request."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable

from keel.models.base import Model, ModelRequest, ModelResponse, RequestUsage
from keel.models.pricing import Price
from keel.models.tokens import count_request_tokens, count_text_tokens

__all__ = ["FunctionModel"]

ResponseFunction = Callable[[ModelRequest], ModelResponse | str | Awaitable[ModelResponse | str]]


class FunctionModel(Model):
    """Calls `function(request)` for each turn; it returns a `ModelResponse` or plain text (sync or async).

    Usage is taken from the response when it reports any, else estimated from the request and the answer.
    """

    def __init__(
        self,
        function: ResponseFunction,
        *,
        price: tuple[float, float] = (0.0, 0.0),
        name: str = "test:function",
    ) -> None:
        self.function = function
        self.name = name
        self._price = Price(*price)
        self.requests: list[ModelRequest] = []

    @property
    def price(self) -> Price:
        """The configured price."""
        return self._price

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Build the response with the function."""
        self.requests.append(request)
        produced = self.function(request)
        if inspect.isawaitable(produced):
            produced = await produced
        response = ModelResponse(text=produced) if isinstance(produced, str) else produced
        if response.usage.total_tokens == 0:
            out = count_text_tokens(response.text or "") + sum(
                count_text_tokens(c.name + c.arguments) for c in response.tool_calls
            )
            usage = RequestUsage(count_request_tokens(request), min(out, request.max_output_tokens))
            response = dataclasses.replace(response, usage=usage)
        if not response.model_name:
            response = dataclasses.replace(response, model_name=self.name)
        return response
