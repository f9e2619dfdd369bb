"""Batching (C4): independent small sub-tasks submitted close together share one model call.

Classifications, extractions and validations are often tiny next to the prompt that frames them. A `Batcher`
collects the tasks submitted within `window_s` of the first one (or until `max_batch` are queued), sends them
as ONE request, splits the reply back, and answers each `submit` with its own typed output and its share of
the tokens and cost. A sub-answer that is missing, duplicated or invalid is retried alone; a task that still
fails raises `ModelError` for its own caller only.

```python
batcher = Batcher(model, window_s=0.02, max_batch=16)
sentiment, total = await asyncio.gather(batcher.submit("Sentiment of 'great!'"), batcher.submit("2+3?", int))
await batcher.close()
```

The batched request's user message ends with one line of JSON, ``[{"id": 1, "task": "...", "answer_schema":
{...}}, ...]``, and asks for ``{"answers": [{"id": 1, "answer": ...}, ...]}``; a single-task call ends with
``{"task": "...", "answer_schema": {...}}`` and asks for ``{"answer": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError

from keel.errors import ConfigError, ModelError
from keel.models.base import Model, ModelRequest, UserMessage

__all__ = ["BatchAnswer", "Batcher"]

T = TypeVar("T")

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)

_BATCH_ASK = (
    "Answer each of the independent tasks below on its own. Each task has an id and the JSON schema its answer "
    'must match. Reply with only a JSON object (no prose) of the form {"answers": [{"id": <task id>, "answer": '
    "<the answer>}, ...]}, with exactly one answer per task id.\nTasks:\n"
)
_SINGLE_ASK = (
    "Answer the task below. Its answer must match the given JSON schema. Reply with only a JSON object (no prose) "
    'of the form {"answer": <the answer>}.\nTask:\n'
)


@dataclass(frozen=True, slots=True)
class BatchAnswer(Generic[T]):
    """The answer to one submitted task, with what it cost."""

    output: T
    """The answer, validated against the task's output type."""
    input_tokens: int
    """This task's share of the batched call's input tokens, plus every single-task retry in full."""
    output_tokens: int
    """This task's share of the batched call's output tokens, plus every single-task retry in full."""
    cost_usd: float
    """`model.price.cost` of the tokens above (0.0 when the model has no price)."""
    batch_size: int
    """How many tasks shared the call that answered this one; 1 when it was answered alone."""
    retried_alone: bool
    """Whether the answer came from a single-task retry after the batched attempt failed for this task."""


@dataclass(slots=True)
class _Task:
    """One queued task and the future its `submit` waits on."""

    text: str
    adapter: TypeAdapter[Any]
    schema: dict[str, Any]
    future: asyncio.Future[BatchAnswer[Any]]
    spent: list[int] = field(default_factory=lambda: [0, 0])
    """Input and output tokens charged to the task so far."""


class Batcher:
    """Sends independent small tasks submitted within `window_s` of each other as one model call.

    Args:
        model: the model every call goes to.
        window_s: how long the first task of a batch waits for company (seconds, >= 0).
        max_batch: a batch is sent as soon as this many tasks are queued (>= 1).
        instructions: the system prompt of every call (shared, so split evenly among a batch's tasks).
        max_output_tokens: the output cap of every call.
        max_retries_alone: single-task calls tried for a task the batched call did not answer validly (>= 0).

    Raises:
        ConfigError: an argument is out of range.
    """

    def __init__(
        self,
        model: Model,
        *,
        window_s: float = 0.02,
        max_batch: int = 16,
        instructions: str = "",
        max_output_tokens: int = 2048,
        max_retries_alone: int = 1,
    ) -> None:
        if not isinstance(model, Model):
            raise ConfigError(f"Batcher needs a keel Model, got {type(model).__name__}")
        if isinstance(window_s, bool) or not isinstance(window_s, int | float) or not 0 <= window_s < math.inf:
            raise ConfigError(f"window_s must be a finite number of seconds >= 0, got {window_s!r}")
        for name, value, least in (
            ("max_batch", max_batch, 1),
            ("max_output_tokens", max_output_tokens, 1),
            ("max_retries_alone", max_retries_alone, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
        if not isinstance(instructions, str):
            raise ConfigError(f"instructions must be a string, got {type(instructions).__name__}")
        self.model = model
        self.window_s = float(window_s)
        self.max_batch = max_batch
        self.instructions = instructions
        self.max_output_tokens = max_output_tokens
        self.max_retries_alone = max_retries_alone
        self.calls = 0
        """Model calls made (batched and single, failed ones included)."""
        self.tasks = 0
        """Tasks answered."""
        self._queue: list[_Task] = []
        self._timer: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._adapters: dict[Any, tuple[TypeAdapter[Any], dict[str, Any]]] = {}

    @overload
    async def submit(self, task: str) -> BatchAnswer[str]: ...
    @overload
    async def submit(self, task: str, output_type: type[T]) -> BatchAnswer[T]: ...
    async def submit(self, task: str, output_type: Any = str) -> BatchAnswer[Any]:
        """Queue `task` and return its answer, typed as `output_type`, once the batch it joined is answered.

        Raises:
            ConfigError: the batcher is closed, `task` is not a non-empty string, or `output_type` has no schema.
            ModelError: the task got no valid answer, batched nor alone (the message names it and says why).
        """
        if self._closed:
            raise ConfigError("Batcher.submit after close()")
        if not isinstance(task, str) or not task.strip():
            raise ConfigError(f"a task must be a non-empty string, got {task!r}")
        adapter, schema = self._adapter(output_type)
        item = _Task(task, adapter, schema, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        if len(self._queue) >= self.max_batch:
            self._dispatch()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._after_window())
        return await item.future

    async def close(self) -> None:
        """Send what is queued, wait for every batch in flight, and refuse further submits."""
        self._closed = True
        self._dispatch()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _adapter(self, output_type: Any) -> tuple[TypeAdapter[Any], dict[str, Any]]:
        if output_type not in self._adapters:
            try:
                adapter: TypeAdapter[Any] = TypeAdapter(output_type)
                self._adapters[output_type] = (adapter, adapter.json_schema())
            except (PydanticSchemaGenerationError, TypeError) as exc:
                raise ConfigError(f"output_type {output_type!r} has no JSON schema: {exc}") from exc
        return self._adapters[output_type]

    async def _after_window(self) -> None:
        await asyncio.sleep(self.window_s)
        self._timer = None  # so that `_dispatch` does not cancel the task running it
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand the queued tasks to a batch of their own: no task is ever in two flushes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = [t for t in self._queue if not t.future.done()]  # a cancelled submit is not sent
        self._queue = []
        if batch:
            running = asyncio.create_task(self._run(batch))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Task]) -> None:
        """Answer every task of `batch`; whatever happens, no future is left pending."""
        try:
            if len(batch) == 1:
                await self._alone(batch[0], "", attempts=1 + self.max_retries_alone, retried=False)
            else:
                await self._batched(batch)
        except asyncio.CancelledError:
            for task in batch:
                task.future.cancel()
            raise
        except Exception as exc:  # a bug or a non-ModelError from the model: every caller sees it
            for task in batch:
                if not task.future.done():
                    task.future.set_exception(exc)

    async def _batched(self, batch: list[_Task]) -> None:
        """One call for the whole batch; the tasks it did not answer validly are retried alone, concurrently."""
        request, task_chars, shared = self._batch_request(batch)
        self.calls += 1
        answers: dict[int, list[Any]] | None = None
        try:
            response = await self.model.request(request)
        except ModelError as exc:
            usage, why = exc.tokens or (0, 0), f"the batched call failed ({exc})"
        else:
            usage = (response.usage.input_tokens, response.usage.output_tokens)
            answers, why = _parse_batch(response.text or ""), "the batched reply was not the JSON asked for"
        n = len(batch)
        inputs = _apportion(usage[0], [chars * n + shared for chars in task_chars])
        given = [answers.get(i + 1, []) if answers is not None else [] for i in range(n)]
        outputs = _apportion(usage[1], [sum(len(json.dumps(a)) for a in g) for g in given])
        retry: list[tuple[_Task, str]] = []
        for task, found, tokens_in, tokens_out in zip(batch, given, inputs, outputs, strict=True):
            task.spent = [tokens_in, tokens_out]
            if answers is None:
                retry.append((task, why))
            elif len(found) != 1:
                retry.append((task, "the batched reply had no answer for it" if not found else "answered twice"))
            else:
                output, problem = _validate(task.adapter, found[0])
                if problem is None:
                    self._answer(task, output, batch_size=n, retried=False)
                else:
                    retry.append((task, f"invalid answer in the batch ({problem})"))
        attempts = self.max_retries_alone
        await asyncio.gather(*(self._alone(task, why, attempts=attempts, retried=True) for task, why in retry))

    async def _alone(self, task: _Task, why: str, *, attempts: int, retried: bool) -> None:
        """Up to `attempts` single-task calls for `task`, each charged in full to it; then its `ModelError`."""
        for attempt in range(attempts):
            if task.future.done():
                return  # its submit was cancelled: nobody is waiting for the answer
            self.calls += 1
            try:
                response = await self.model.request(self._single_request(task))
            except ModelError as exc:
                task.spent = [a + b for a, b in zip(task.spent, exc.tokens or (0, 0), strict=True)]
                why = f"the single call failed ({exc})"
                continue
            usage = (response.usage.input_tokens, response.usage.output_tokens)
            task.spent = [a + b for a, b in zip(task.spent, usage, strict=True)]
            parsed = _loads(response.text or "")
            if not isinstance(parsed, dict) or "answer" not in parsed:
                why = 'the single reply was not a JSON object {"answer": ...}'
                continue
            output, problem = _validate(task.adapter, parsed["answer"])
            if problem is None:
                self._answer(task, output, batch_size=1, retried=retried or attempt > 0)
                return
            why = f"invalid answer ({problem})"
        if not task.future.done():
            tokens = (task.spent[0], task.spent[1])
            message = f"batched task {_short(task.text)} got no valid answer: {why}"
            task.future.set_exception(ModelError(message, tokens=tokens))

    def _answer(self, task: _Task, output: Any, *, batch_size: int, retried: bool) -> None:
        if task.future.done():
            return  # its submit was cancelled meanwhile
        self.tasks += 1
        tokens_in, tokens_out = task.spent
        price = self.model.price
        cost = price.cost(tokens_in, tokens_out) if price is not None else 0.0
        task.future.set_result(BatchAnswer(output, tokens_in, tokens_out, cost, batch_size, retried))

    def _batch_request(self, batch: Sequence[_Task]) -> tuple[ModelRequest, list[int], int]:
        """The batched request, the characters each task adds to the prompt, and those all tasks share."""
        items = [
            json.dumps({"id": i + 1, "task": t.text, "answer_schema": t.schema}, ensure_ascii=False)
            for i, t in enumerate(batch)
        ]
        one_type = len({json.dumps(t.schema, sort_keys=True) for t in batch}) == 1
        output_schema = _reply_schema(batch[0].schema if one_type else {}, batched=True)  # mixed types: any answer
        text = _BATCH_ASK + "[" + ", ".join(items) + "]"
        task_chars = [len(item) for item in items]
        shared = len(self.instructions) + len(text) - sum(task_chars) + len(json.dumps(output_schema))
        return self._request(text, output_schema), task_chars, shared

    def _single_request(self, task: _Task) -> ModelRequest:
        item = json.dumps({"task": task.text, "answer_schema": task.schema}, ensure_ascii=False)
        return self._request(_SINGLE_ASK + item, _reply_schema(task.schema, batched=False))

    def _request(self, text: str, output_schema: dict[str, Any]) -> ModelRequest:
        return ModelRequest(
            self.instructions,
            (UserMessage(text),),
            output_schema=output_schema,
            max_output_tokens=self.max_output_tokens,
        )


def _reply_schema(answer_schema: dict[str, Any], *, batched: bool) -> dict[str, Any]:
    """The schema of ``{"answers": [{"id": 1, "answer": ...}]}`` or ``{"answer": ...}``; ``$defs`` at the root."""
    answer = dict(answer_schema)
    defs = answer.pop("$defs", None)  # the refs point at the root: keep them valid once the schema is nested
    if batched:
        item = {"type": "object", "properties": {"id": {"type": "integer"}, "answer": answer}}
        item["required"] = ["id", "answer"]
        answer, key = {"type": "array", "items": item}, "answers"
    else:
        key = "answer"
    schema: dict[str, Any] = {"type": "object", "properties": {key: answer}, "required": [key]}
    if defs:
        schema["$defs"] = defs
    return schema


def _loads(text: str) -> Any:
    """The JSON value of a reply (a Markdown ```json fence accepted), or None when it is not JSON."""
    match = _FENCE.match(text)
    try:
        return json.loads(match.group(1) if match else text)
    except json.JSONDecodeError:
        return None


def _parse_batch(text: str) -> dict[int, list[Any]] | None:
    """Every answer of a batched reply by task id, or None when the reply is not the JSON object asked for."""
    parsed = _loads(text)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("answers"), list):
        return None
    by_id: dict[int, list[Any]] = {}
    for entry in parsed["answers"]:
        if not isinstance(entry, dict) or "answer" not in entry:
            continue
        raw = entry.get("id")
        if isinstance(raw, int) and not isinstance(raw, bool):
            by_id.setdefault(raw, []).append(entry["answer"])
        elif isinstance(raw, str) and raw.strip().isdigit():  # "1" for 1: models quote ids now and then
            by_id.setdefault(int(raw), []).append(entry["answer"])
    return by_id


def _validate(adapter: TypeAdapter[Any], answer: Any) -> tuple[Any, str | None]:
    """The validated answer and None, or None and what is wrong with it."""
    try:
        return adapter.validate_python(answer), None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        return None, "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in errors)


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` as integers that sum to it (largest remainder; even if all 0)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
