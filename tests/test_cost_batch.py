"""Batching of small independent tasks into one model call (C4)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from keel.cost.batch import BatchAnswer, Batcher
from keel.errors import ConfigError, ModelError
from keel.models.base import ModelRequest, ModelResponse, RequestUsage
from keel.models.pricing import Price
from keel.testing import FunctionModel

PRICE = (2.0, 8.0)
BATCH_USAGE = (1003, 207)
SINGLE_USAGE = (50, 11)
MISSING = object()


class Person(BaseModel):
    name: str
    age: int


class Team(BaseModel):
    lead: Person
    size: int


def right_answer(task: str) -> Any:
    """The oracle: ``double N`` → int, ``upper s`` → str, ``person NAME AGE`` → Person, ``team NAME AGE N`` → Team."""
    verb, _, rest = task.partition(" ")
    if verb == "double":
        return 2 * int(rest)
    if verb == "upper":
        return rest.upper()
    if verb == "team":
        name, age, size = rest.split()
        return {"lead": {"name": name, "age": int(age)}, "size": int(size)}
    name, age = rest.split()
    return {"name": name, "age": int(age)}


def payload(request: ModelRequest) -> Any:
    """The JSON line that ends the user message: a list of tasks (batched) or one task (alone)."""
    content = request.messages[-1].content
    assert content is not None
    return json.loads(content.splitlines()[-1])


def model_for(
    batched: Callable[[list[dict[str, Any]]], Any] | None = None,
    alone: Callable[[str], Any] = right_answer,
) -> FunctionModel:
    """A model answering batched requests with `batched(items)` (default: every right answer) and single ones
    with ``{"answer": alone(task)}``; either may raise `ModelError` or return raw text."""

    def answers(items: list[dict[str, Any]]) -> Any:
        return {"answers": [{"id": item["id"], "answer": right_answer(item["task"])} for item in items]}

    def respond(request: ModelRequest) -> ModelResponse:
        data = payload(request)
        if isinstance(data, list):
            body = (batched or answers)(data)
            text = body if isinstance(body, str) else json.dumps(body)
            return ModelResponse(text=text, usage=RequestUsage(*BATCH_USAGE))
        answer = alone(data["task"])
        text = answer if isinstance(answer, str) and answer.startswith("not json") else json.dumps({"answer": answer})
        return ModelResponse(text=text, usage=RequestUsage(*SINGLE_USAGE))

    return FunctionModel(respond, price=PRICE)


def without(task: str, transform: Callable[[Any], Any] = lambda a: MISSING) -> Callable[[list[dict[str, Any]]], Any]:
    """A batched reply where the answer to `task` is transformed (dropped by default)."""

    def batched(items: list[dict[str, Any]]) -> Any:
        out = []
        for item in items:
            answer = right_answer(item["task"])
            if item["task"] == task:
                answer = transform(answer)
            if answer is not MISSING:
                out.append({"id": item["id"], "answer": answer})
        return {"answers": out}

    return batched


TASKS: list[tuple[str, type[Any]]] = [
    ("double 3", int),
    ("upper hello", str),
    ("person Ann 31", Person),
    ("double 21", int),
    ("upper a much longer sentence to classify, with many more characters in it", str),
    ("person Bob 7", Person),
    ("double 100", int),
    ("upper x", str),
    ("person Cy 64", Person),
    ("double 0", int),
]


async def submit_all(batcher: Batcher, tasks: list[tuple[str, type[Any]]] = TASKS) -> list[Any]:
    coros = [batcher.submit(task, kind) for task, kind in tasks]
    return await asyncio.wait_for(asyncio.gather(*coros, return_exceptions=True), 5)


def expected(task: str, kind: type[Any]) -> Any:
    answer = right_answer(task)
    return kind.model_validate(answer) if issubclass(kind, BaseModel) else answer


async def test_ten_concurrent_tasks_make_one_call_with_typed_answers() -> None:
    model = model_for()
    batcher = Batcher(model, instructions="You are precise.")
    results = await submit_all(batcher)
    assert len(model.requests) == batcher.calls == 1
    assert batcher.tasks == 10
    for (task, kind), result in zip(TASKS, results, strict=True):
        assert isinstance(result, BatchAnswer)
        assert type(result.output) is kind
        assert result.output == expected(task, kind)
        assert (result.batch_size, result.retried_alone) == (10, False)
    request = model.requests[0]
    assert request.instructions == "You are precise."
    assert [item["id"] for item in payload(request)] == list(range(1, 11))
    assert payload(request)[2]["answer_schema"]["title"] == "Person"
    assert request.output_schema is not None and request.output_schema["required"] == ["answers"]


async def test_a_fenced_reply_is_accepted_and_one_type_gets_its_exact_schema() -> None:
    def fenced(items: list[dict[str, Any]]) -> str:
        answers = [{"id": i["id"], "answer": right_answer(i["task"])} for i in items]
        return "```json\n" + json.dumps({"answers": answers}) + "\n```"

    model = model_for(fenced)
    teams: list[tuple[str, type[Any]]] = [("team Ann 31 4", Team), ("team Bob 40 12", Team)]
    results = await submit_all(Batcher(model), teams)
    assert [r.output for r in results] == [Team(lead=Person(name="Ann", age=31), size=4), expected(*teams[1])]
    schema = model.requests[0].output_schema
    assert schema is not None
    answer = schema["properties"]["answers"]["items"]["properties"]["answer"]
    assert answer["title"] == "Team" and "$defs" not in answer
    assert schema["$defs"] == {"Person": Person.model_json_schema()}  # hoisted to the root, where refs point


async def test_tokens_and_cost_are_apportioned_and_sum_exactly() -> None:
    results = await submit_all(Batcher(model_for()))
    assert sum(r.input_tokens for r in results) == BATCH_USAGE[0]
    assert sum(r.output_tokens for r in results) == BATCH_USAGE[1]
    assert sum(r.cost_usd for r in results) == pytest.approx(Price(*PRICE).cost(*BATCH_USAGE))
    for r in results:
        assert r.cost_usd == pytest.approx(Price(*PRICE).cost(r.input_tokens, r.output_tokens))
    by_task = {task: r for (task, _), r in zip(TASKS, results, strict=True)}
    longest = TASKS[4][0]
    assert by_task[longest].input_tokens > by_task["upper x"].input_tokens  # a longer task pays more input
    assert by_task[longest].output_tokens > by_task["double 0"].output_tokens  # a longer answer pays more output


async def test_no_price_means_zero_cost() -> None:
    class Unpriced(FunctionModel):
        @property
        def price(self) -> Price | None:  # type: ignore[override]
            return None

    unpriced = Unpriced(model_for().function)
    results = await submit_all(Batcher(unpriced), TASKS[:3])
    assert [r.cost_usd for r in results] == [0.0, 0.0, 0.0]
    assert sum(r.input_tokens for r in results) == BATCH_USAGE[0]


@pytest.mark.parametrize(
    "defect",
    [
        pytest.param(without("double 21"), id="missing"),
        pytest.param(without("double 21", lambda a: "lots"), id="invalid"),
        pytest.param(
            lambda items: {
                "answers": without("")(items)["answers"] + [{"id": 4, "answer": 41}],  # id 4 is "double 21"
            },
            id="duplicated",
        ),
    ],
)
async def test_a_bad_sub_answer_is_retried_alone_and_the_others_are_unaffected(
    defect: Callable[[list[dict[str, Any]]], Any],
) -> None:
    model = model_for(defect)
    batcher = Batcher(model)
    results = await submit_all(batcher)
    assert batcher.calls == len(model.requests) == 2
    assert payload(model.requests[1]) == {"task": "double 21", "answer_schema": {"type": "integer"}}
    for (task, kind), r in zip(TASKS, results, strict=True):
        assert r.output == expected(task, kind)
        if task == "double 21":
            assert (r.batch_size, r.retried_alone) == (1, True)
            assert r.input_tokens >= SINGLE_USAGE[0] and r.output_tokens >= SINGLE_USAGE[1]
        else:
            assert (r.batch_size, r.retried_alone) == (10, False)
    # The retry is charged in full to its task, on top of the batch's totals.
    assert sum(r.input_tokens for r in results) == BATCH_USAGE[0] + SINGLE_USAGE[0]
    assert sum(r.output_tokens for r in results) == BATCH_USAGE[1] + SINGLE_USAGE[1]


@pytest.mark.parametrize("alone_reply", ["raises", "invalid", "not json"])
async def test_a_task_failing_alone_too_raises_only_for_its_submit(alone_reply: str) -> None:
    def alone(task: str) -> Any:
        if task != "upper hello":
            return right_answer(task)
        if alone_reply == "raises":
            raise ModelError("provider unavailable")
        return {"not": "a string"} if alone_reply == "invalid" else "not json at all"

    model = model_for(without("upper hello", lambda a: 42), alone)
    batcher = Batcher(model, max_retries_alone=2)
    results = await submit_all(batcher)
    assert batcher.calls == 3  # the batch, then two single attempts for the failing task
    failed = results[1]
    assert isinstance(failed, ModelError)
    assert "'upper hello'" in str(failed)
    reason = {"raises": "provider unavailable", "invalid": "invalid answer", "not json": '{"answer": ...}'}
    assert reason[alone_reply] in str(failed)
    assert failed.tokens is not None and failed.tokens[0] > 0
    others = [r for i, r in enumerate(results) if i != 1]
    assert all(isinstance(r, BatchAnswer) and not r.retried_alone for r in others)
    assert batcher.tasks == 9


async def test_no_retries_alone_fails_the_task_with_the_batch_reason() -> None:
    batcher = Batcher(model_for(without("double 3", lambda a: "three")), max_retries_alone=0)
    results = await submit_all(batcher)
    assert batcher.calls == 1
    assert isinstance(results[0], ModelError)
    assert "'double 3'" in str(results[0]) and "invalid answer in the batch" in str(results[0])


def raise_model_error(items: list[dict[str, Any]]) -> Any:
    raise ModelError("rate limited", retryable=True)


@pytest.mark.parametrize("batched", [raise_model_error, lambda items: "Sorry, I cannot help."], ids=["error", "prose"])
async def test_a_whole_batch_failing_retries_every_task_alone(batched: Callable[[list[dict[str, Any]]], Any]) -> None:
    model = model_for(batched)
    batcher = Batcher(model)
    results = await submit_all(batcher, TASKS[:4])
    assert batcher.calls == 5
    assert [r.output for r in results] == [expected(*t) for t in TASKS[:4]]
    assert all(r.retried_alone and r.batch_size == 1 for r in results)


async def test_a_lone_task_is_sent_as_a_single_call() -> None:
    model = model_for()
    result = await asyncio.wait_for(Batcher(model).submit("person Dee 40", Person), 5)
    assert result.output == Person(name="Dee", age=40)
    assert (result.batch_size, result.retried_alone) == (1, False)
    assert (result.input_tokens, result.output_tokens) == SINGLE_USAGE
    assert model.requests[0].output_schema is not None
    assert model.requests[0].output_schema["required"] == ["answer"]


async def test_max_batch_splits_twenty_tasks_into_two_calls_without_waiting_for_the_window() -> None:
    model = model_for()
    batcher = Batcher(model, window_s=60, max_batch=10)
    tasks = [(f"double {i}", int) for i in range(20)]
    results = await submit_all(batcher, tasks)
    assert batcher.calls == 2
    assert [len(payload(r)) for r in model.requests] == [10, 10]
    assert [r.output for r in results] == [2 * i for i in range(20)]
    assert {r.batch_size for r in results} == {10}


async def test_tasks_after_the_window_go_in_the_next_batch() -> None:
    model = model_for()
    batcher = Batcher(model, window_s=0.2)

    async def later(delay: float, task: str) -> BatchAnswer[int]:
        await asyncio.sleep(delay)
        return await batcher.submit(task, int)

    # Within the window of the first task: 0 s and 0.05 s; after it: 0.5 s and 0.55 s.
    plan = [(0.0, "double 1"), (0.05, "double 2"), (0.5, "double 3"), (0.55, "double 4")]
    results = await asyncio.wait_for(asyncio.gather(*(later(d, t) for d, t in plan)), 5)
    assert [r.output for r in results] == [2, 4, 6, 8]
    batches = [[item["task"] for item in payload(request)] for request in model.requests]
    assert batches == [["double 1", "double 2"], ["double 3", "double 4"]]


async def test_close_flushes_the_queue_and_later_submits_are_refused() -> None:
    model = model_for()
    batcher = Batcher(model, window_s=60)
    pending = [asyncio.create_task(batcher.submit(f"double {i}", int)) for i in range(3)]
    await asyncio.sleep(0)  # let them queue
    assert batcher.calls == 0
    await asyncio.wait_for(batcher.close(), 5)
    assert all(p.done() for p in pending)
    assert [p.result().output for p in pending] == [0, 2, 4]
    assert batcher.calls == 1
    with pytest.raises(ConfigError, match="after close"):
        await batcher.submit("double 5", int)
    await batcher.close()  # closing twice is harmless


async def test_a_cancelled_submit_does_not_disturb_the_others() -> None:
    model = model_for()
    batcher = Batcher(model, window_s=60)
    pending = [asyncio.create_task(batcher.submit(f"double {i}", int)) for i in range(3)]
    await asyncio.sleep(0)
    pending[1].cancel()
    await asyncio.wait_for(batcher.close(), 5)
    assert [t["task"] for t in payload(model.requests[0])] == ["double 0", "double 2"]
    assert pending[0].result().output == 0 and pending[2].result().output == 4
    assert pending[1].cancelled()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_s": -0.1},
        {"window_s": float("nan")},
        {"window_s": float("inf")},
        {"max_batch": 0},
        {"max_batch": 2.5},
        {"max_batch": True},
        {"max_output_tokens": 0},
        {"max_retries_alone": -1},
        {"instructions": None},
    ],
)
async def test_bad_arguments_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Batcher(model_for(), **kwargs)


async def test_bad_submits_raise_config_error() -> None:
    batcher = Batcher(model_for())
    with pytest.raises(ConfigError):
        Batcher("openai:gpt-4o-mini")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty"):
        await batcher.submit("  ")

    class Opaque:
        pass

    with pytest.raises(ConfigError, match="no JSON schema"):
        await batcher.submit("double 1", Opaque)
    assert batcher.calls == 0


async def test_an_unexpected_model_exception_reaches_every_caller_instead_of_hanging() -> None:
    def broken(items: list[dict[str, Any]]) -> Any:
        raise RuntimeError("bug in the provider")

    batcher = Batcher(model_for(broken))
    results = await submit_all(batcher, TASKS[:3])
    assert all(isinstance(r, RuntimeError) for r in results)
    assert batcher.calls == 1 and batcher.tasks == 0
