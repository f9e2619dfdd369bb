"""Model fault injectors for chaos tests: provider errors and bad responses, on a schedule or at random.

`FaultyModel` wraps a model and, per request, injects a fault from `FAULTS` instead of asking it; `ChaosModel`
is a `FaultyModel` around a random model that calls the allowed tools with schema-valid arguments or answers.
Deterministic under a `seed`; both count what they injected.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from keel.errors import ConfigError, ModelError
from keel.models.base import FinishReason, Model, ModelRequest, ModelResponse, RequestUsage, ToolCall, ToolSpec
from keel.models.pricing import Price
from keel.models.tokens import count_request_tokens, count_text_tokens
from keel.testing.faults import check_probability
from keel.testing.function import FunctionModel

__all__ = ["CHAOS_FAULTS", "FAULTS", "ChaosModel", "Fault", "FaultyModel"]

Fault = Literal[
    "rate_limit", "server_error", "client_error", "loop", "unknown_tool", "malformed_arguments", "refusal", "empty",
    "truncated",
]  # fmt: skip
"""What `FaultyModel` can do to a turn: three provider errors (429 and 503 retryable, 400 not), or a bad response."""
FAULTS: tuple[Fault, ...] = get_args(Fault)

_ERRORS: dict[str, tuple[int, bool, str]] = {
    "rate_limit": (429, True, "rate limit exceeded"),
    "server_error": (503, True, "service unavailable"),
    "client_error": (400, False, "invalid request"),
}
_MALFORMED = ('{"query": ', "{'query': 'single quotes'}", "not json at all", '{"query": "x",}', "")


def _example(schema: Mapping[str, Any], rng: random.Random, defs: Mapping[str, Any], depth: int = 0) -> Any:
    """A value valid under a simple JSON schema (pydantic's): objects, arrays, enums, strings, numbers, booleans."""
    if "$ref" in schema:
        return _example(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], rng, defs, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if options := schema.get("anyOf") or schema.get("oneOf"):
        usable = [o for o in options if o.get("type") != "null"] or options
        return _example(rng.choice(usable), rng, defs, depth)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        required = schema.get("required", ())
        properties = schema.get("properties", {})
        return {name: _example(sub, rng, defs, depth + 1) for name, sub in properties.items() if name in required}
    if kind == "array":
        count = max(schema.get("minItems", 0), rng.randint(0, 2) if depth < 3 else 0)
        return [_example(schema.get("items", {}), rng, defs, depth + 1) for _ in range(count)]
    return _scalar(kind, schema, rng)


def _scalar(kind: str, schema: Mapping[str, Any], rng: random.Random) -> Any:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 101) - 1)
    if kind == "integer":
        return rng.randint(int(low), max(int(low), int(high)))
    if kind == "number":
        return round(rng.uniform(low, max(low, high)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    formats = {"date": "2024-05-01", "date-time": "2024-05-01T12:00:00Z", "email": "someone@example.com"}
    text = formats.get(schema.get("format", ""), f"value-{rng.randint(1, 9999)}")
    text = text.ljust(schema.get("minLength", 0), "x")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def _valid_call(call_id: str, tools: Sequence[ToolSpec], rng: random.Random) -> ToolCall:
    spec = rng.choice(tools)
    arguments = _example(spec.parameters, rng, spec.parameters.get("$defs", {}))
    return ToolCall(call_id, spec.name, json.dumps(arguments))


def _unknown_name(tools: Sequence[ToolSpec]) -> str:
    """A plausible hallucination: a near-miss of a real tool's name, or a tool nobody declared."""
    names = {t.name for t in tools}
    name = f"{tools[0].name}_v2" if tools else "search_web"
    while name in names:
        name += "_x"
    return name


class FaultyModel(Model):
    """Wraps `inner` and replaces some of its turns with faults, from a fixed `schedule` then at random.

    A faulted turn does not reach `inner` (a `ScriptedModel` resumes its script after the fault). Faults:
    ``rate_limit`` (retryable 429 with `retry_after_s`), ``server_error`` (retryable 503), ``client_error``
    (non-retryable 400), ``loop`` (the last tool calls again), ``unknown_tool``, ``malformed_arguments``
    (invalid JSON), ``refusal`` (``content_filter``), ``empty`` (no text, no calls), ``truncated`` (cut off at
    the output-token limit, finish reason ``length``). Responses carry usage, and `name`, `price` and
    `count_input_tokens` are the inner model's, so budgets apply as they would to `inner`.

    Args:
        inner: the model whose turns are passed through when no fault is drawn.
        schedule: the fault (or None: pass through) for each of the first requests, in order.
        p: probability of each fault per request once the schedule is played (at most 1 in all).
        seed: seeds the draws; the same seed injects the same faults.
        retry_after_s: the wait a ``rate_limit`` error asks for.
    """

    def __init__(
        self,
        inner: Model,
        *,
        schedule: Sequence[Fault | None] = (),
        p: Mapping[Fault, float] | None = None,
        seed: int | None = None,
        retry_after_s: float = 0.1,
    ) -> None:
        self.p: dict[Fault, float] = dict(p or {})
        for fault, chance in self.p.items():
            check_probability(f"p[{fault!r}]", chance)
        unknown = [f for f in [*self.p, *schedule] if f is not None and f not in FAULTS]
        if unknown or sum(self.p.values()) > 1.0 + 1e-9:
            raise ConfigError(f"faults must be among {FAULTS} with probabilities summing to at most 1: {unknown}")
        self.inner = inner
        self.name = inner.name
        self.schedule = tuple(schedule)
        self.retry_after_s = retry_after_s
        self.injected: Counter[Fault] = Counter()
        """How many times each fault was injected."""
        self.faults: list[Fault | None] = []
        """The fault of each request so far (None: passed through)."""
        self._rng = random.Random(seed)
        self._last_calls: tuple[ToolCall, ...] = ()

    @property
    def price(self) -> Price | None:
        """The inner model's price."""
        return self.inner.price

    def count_input_tokens(self, request: ModelRequest) -> int:
        """The inner model's count."""
        return self.inner.count_input_tokens(request)

    async def aclose(self) -> None:
        """Close the inner model."""
        await self.inner.aclose()

    def _next_fault(self) -> Fault | None:
        turn = len(self.faults)
        if turn < len(self.schedule):
            return self.schedule[turn]
        if not self.p:
            return None
        draw = self._rng.random()
        for fault in FAULTS:
            draw -= self.p.get(fault, 0.0)
            if draw < 0:
                return fault
        return None

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Pass `request` to the inner model, or inject the next fault instead."""
        fault = self._next_fault()
        self.faults.append(fault)
        if fault is None:
            response = await self.inner.request(request)
        else:
            self.injected[fault] += 1
            response = self._inject(fault, request)
        if response.tool_calls:
            self._last_calls = response.tool_calls
        return response

    def _inject(self, fault: Fault, request: ModelRequest) -> ModelResponse:
        if fault in _ERRORS:
            status, retryable, message = _ERRORS[fault]
            wait = self.retry_after_s if status == 429 else None
            raise ModelError(
                f"injected fault: {status} {message}", retryable=retryable, status_code=status, retry_after_s=wait
            )
        call_id = f"fault_{len(self.faults)}"
        text: str | None = None
        calls: tuple[ToolCall, ...] = ()
        finish: FinishReason = "tool_calls"
        if fault == "loop":
            calls = self._last_calls or ((_valid_call(call_id, request.tools, self._rng),) if request.tools else ())
        elif fault == "unknown_tool":
            calls = (ToolCall(call_id, _unknown_name(request.tools), "{}"),)
        elif fault == "malformed_arguments":
            name = request.tools[0].name if request.tools else "lookup"
            calls = (ToolCall(call_id, name, self._rng.choice(_MALFORMED)),)
        elif fault == "refusal":
            text, finish = "I'm sorry, but I can't help with that request.", "content_filter"
        elif fault == "truncated":
            text, finish = "Here is what I found so far: the order", "length"
        else:  # empty, or a loop with nothing to repeat
            finish = "stop"
        out = request.max_output_tokens if fault == "truncated" else 1
        response = _response(text, calls, finish, request, self.inner.count_input_tokens(request), out)
        return dataclasses.replace(response, provider_id=call_id, model_name=self.name, notes=(f"injected: {fault}",))


def _response(
    text: str | None, calls: tuple[ToolCall, ...], finish: FinishReason, request: ModelRequest, tokens_in: int, out: int
) -> ModelResponse:
    """A response with realistic usage: at least `out` output tokens, and what the content takes."""
    produced = (text or "") + "".join(c.name + c.arguments for c in calls)
    tokens_out = min(max(out, count_text_tokens(produced)), request.max_output_tokens)
    return ModelResponse(text, calls, RequestUsage(tokens_in, tokens_out), finish)


def _random_turn(request: ModelRequest, rng: random.Random, p_answer: float, turn: int) -> ModelResponse:
    """Call a random allowed tool with valid arguments, or answer (valid typed output when a schema is set)."""
    text: str | None = None
    calls: tuple[ToolCall, ...] = ()
    if request.tools and rng.random() >= p_answer:
        count = 1 if rng.random() < 0.8 else 2
        calls = tuple(_valid_call(f"chaos_{turn}_{i}", request.tools, rng) for i in range(count))
    elif request.output_schema is not None:
        text = json.dumps(_example(request.output_schema, rng, request.output_schema.get("$defs", {})))
    else:
        text = f"Here is my answer after {turn} turns."
    reasoning = rng.randint(10, 200)  # models spend output tokens on reasoning too
    return _response(text, calls, "tool_calls" if calls else "stop", request, count_request_tokens(request), reasoning)


CHAOS_FAULTS: dict[Fault, float] = dict.fromkeys(FAULTS, 0.05)
"""`ChaosModel`'s default: each fault on 5% of turns (45% of turns faulty)."""


class ChaosModel(FaultyModel):
    """A model that acts at random, for property-based tests: whatever the model does, the run must end bounded.

    Each turn it injects a fault (see `FaultyModel`; ``loop`` repeats a previous call) with probabilities `p`,
    else calls a random allowed tool with arguments valid under its schema, or answers (with probability
    `p_answer`). Usage is realistic (input grows with the conversation) and priced, so budgets bite.

    Args:
        seed: the same seed gives the same behaviour for the same requests.
        p: probability of each fault per turn (default `CHAOS_FAULTS`).
        p_answer: probability of a final answer on a turn without a fault (with no tools: always).
        price: USD per million ``(input, output)`` tokens.
        name: the model name recorded in the journal.
        retry_after_s: the wait a ``rate_limit`` error asks for.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        p: Mapping[Fault, float] | None = None,
        p_answer: float = 0.2,
        price: tuple[float, float] = (0.15, 0.60),
        name: str = "test:chaos",
        retry_after_s: float = 0.01,
    ) -> None:
        check_probability("p_answer", p_answer)
        rng = random.Random(None if seed is None else f"chaos:{seed}")
        turns = itertools.count(1)

        def act(request: ModelRequest) -> ModelResponse:
            return _random_turn(request, rng, p_answer, next(turns))

        inner = FunctionModel(act, price=price, name=name)
        super().__init__(inner, p=CHAOS_FAULTS if p is None else p, seed=seed, retry_after_s=retry_after_s)
