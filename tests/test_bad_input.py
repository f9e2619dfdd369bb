"""Bad input from the task, a model or a tool ends in a status and a journaled reason, never an exception.

What a caller gets for each case is listed in docs/recovery.md ("What a caller gets when something is broken").
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from keel import Agent, Budget, EventKind, ReviewQueue, RunStatus, tool
from keel.errors import ModelError
from keel.guardrails import GuardContext, InjectionScreen, Verdict
from keel.models import Model, ModelRequest, ModelResponse, RequestUsage, ToolCall, ToolResultMessage
from keel.store import MemoryStore, SQLiteStore, Store, open_store
from keel.testing import FunctionModel, ScriptedModel, call, fail, reply


@tool
def echo(text: str) -> str:
    """Say the text back."""
    return text


def tool_results(request: ModelRequest) -> list[ToolResultMessage]:
    return [m for m in request.messages if isinstance(m, ToolResultMessage)]


def then_answer(first: ModelResponse, answer: str = "done") -> FunctionModel:
    """A model whose first turn is `first`, and which answers once it has read a tool result."""
    return FunctionModel(lambda request: reply(answer) if tool_results(request) else first)


def agent(model: Model, *tools, **kwargs) -> Agent:
    return Agent("bad-input", model, tools=list(tools) or [echo], store=kwargs.pop("store", MemoryStore()), **kwargs)


def kinds(result, kind: EventKind) -> list[dict]:
    return [e.payload for e in result.events if e.kind is kind]


# --- sizes -------------------------------------------------------------------------------------------------


def test_a_ten_megabyte_task_is_counted_and_refused_by_the_token_budget() -> None:
    # guards=[]: screening 10 MB for injections is the screen's own cost, not what this test is about
    model = FunctionModel(lambda request: reply("done"))
    result = agent(model, guards=[], budget=Budget(max_tokens=100_000)).run_sync("word " * 2_000_000)
    assert result.status is RunStatus.PARTIAL
    assert "budget exhausted" in result.report.reason
    [refused] = kinds(result, EventKind.BUDGET_REFUSED)
    assert refused["needed"] >= 2_000_000


def test_an_oversized_tool_result_is_cut_for_the_model_with_a_marker_and_kept_whole_in_the_journal() -> None:
    page = "<p>" + "lorem ipsum " * 100_000 + "THE END</p>"  # 1.2 MB

    @tool(trusted=True)
    def fetch_page() -> str:
        """Fetch a page."""
        return page

    seen: list[str] = []

    def model(request: ModelRequest) -> ModelResponse:
        if results := tool_results(request):
            seen.append(results[0].content)
            return reply("read it")
        return call("fetch_page")

    result = agent(FunctionModel(model), fetch_page).run_sync("read the page")
    assert result.status is RunStatus.COMPLETED
    [shown] = seen
    assert len(shown) < 101_000 and "characters cut here" in shown
    assert shown.startswith("<p>lorem ipsum") and shown.endswith("THE END</p>")  # head and tail kept
    [called] = kinds(result, EventKind.TOOL_CALLED)
    assert called["result"] == page


def test_a_resumed_run_shows_the_model_the_same_cut_result(tmp_path: Path) -> None:
    @tool(trusted=True)
    def fetch_page() -> str:
        """Fetch a page."""
        return "x" * 300_000

    @tool(severity="critical")
    def publish(text: str) -> str:
        """Publish a summary (a person approves)."""
        return "published"

    seen: list[str] = []

    def model(request: ModelRequest) -> ModelResponse:
        results = tool_results(request)
        if not results:
            return call("fetch_page")
        seen.append(results[0].content)
        return call("publish", text="summary") if len(results) == 1 else reply("done")

    store = SQLiteStore(tmp_path / "keel.db")
    try:
        desk = agent(FunctionModel(model), fetch_page, publish, store=store)
        paused = desk.run_sync("summarize the page")
        [item] = ReviewQueue(store).pending_sync(run_id=paused.run_id)
        ReviewQueue(store).approve_sync(item.id, by="ops")
        done = desk.resume_sync(paused.run_id)
    finally:
        store.close()
    assert done.status is RunStatus.COMPLETED
    assert len(seen) == 2 and seen[0] == seen[1] and "characters cut here" in seen[0]


def test_five_megabytes_of_model_text_are_journaled_and_counted_on_the_next_turn() -> None:
    huge = "y " * 2_500_000
    first = ModelResponse(text=huge, tool_calls=(ToolCall("c1", "echo", '{"text": "hi"}'),))
    result = agent(then_answer(first), guards=[]).run_sync("go")
    assert result.status is RunStatus.COMPLETED
    turns = kinds(result, EventKind.MODEL_CALLED)
    assert turns[0]["text"] == huge and len(turns) == 2
    assert result.events[-2].tokens_in >= 2_500_000  # the second call's counted input includes the 5 MB


# --- malformed tool calls and failing tools ---------------------------------------------------------------


def test_arguments_nested_thousands_deep_are_rejected_and_fed_back() -> None:
    deep = "[" * 5_000 + "]" * 5_000
    result = agent(then_answer(ModelResponse(tool_calls=(ToolCall("c1", "echo", f'{{"text": {deep}}}'),)))).run_sync(
        "go"
    )
    assert result.status is RunStatus.COMPLETED
    [rejected] = kinds(result, EventKind.TOOL_REJECTED)
    assert "recursion limit" in rejected["reason"] and rejected["arguments"].startswith('{"text": [[[')


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


@tool
def unprintable() -> str:
    """Fails with an exception whose message cannot be read."""
    raise Unprintable


class Custom(BaseException):
    pass


def _raiser(exc: BaseException, *, is_async: bool):
    if is_async:

        async def boom() -> str:
            """Fails."""
            raise exc

    else:

        def boom() -> str:
            """Fails."""
            raise exc

    return tool(boom)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (Unprintable(), "Unprintable: <its message could not be read: RuntimeError>"),
        (Custom("custom"), "Custom: custom"),
        (GeneratorExit(), "GeneratorExit"),
        (StopIteration(), "StopIteration"),
        (SystemExit(3), "SystemExit: 3"),
    ],
    ids=["unprintable", "base-exception", "generator-exit", "stop-iteration", "system-exit"],
)
def test_whatever_a_tool_raises_is_a_failed_call_the_model_reads(
    exc: BaseException, shown: str, is_async: bool
) -> None:
    boom = _raiser(exc, is_async=is_async)
    model = ScriptedModel([call("boom"), reply("it failed")])
    result = agent(model, boom).run_sync("go")
    assert result.status is RunStatus.COMPLETED
    [called] = kinds(result, EventKind.TOOL_CALLED)
    assert called["outcome"] == "error"
    if is_async and isinstance(exc, StopIteration):  # Python turns it into a RuntimeError in a coroutine (PEP 479)
        shown = "RuntimeError: coroutine raised StopIteration"
    assert called["error"] == f"Tool 'boom' failed: {shown}"
    assert tool_results(model.requests[1])[0].content == called["error"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_ctrl_c_in_a_tool_stops_the_program_and_the_run_is_closed_as_failed(is_async: bool) -> None:
    store = MemoryStore()
    desk = agent(
        ScriptedModel([call("boom"), reply("x")]), _raiser(KeyboardInterrupt(), is_async=is_async), store=store
    )
    with pytest.raises(KeyboardInterrupt):
        desk.run_sync("go")
    [run] = asyncio.run(store.list_runs())
    assert run.status is RunStatus.FAILED and run.reason == "interrupted (KeyboardInterrupt) before it finished"


class Node:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("value", [object(), {"loop": []}, Node()], ids=["object", "circular", "custom-class"])
def test_a_result_that_cannot_be_serialized_is_a_failed_call(value: object) -> None:
    if isinstance(value, dict):
        value["loop"].append(value)

    @tool
    def weird() -> object:
        """Returns something that is not JSON."""
        return value

    result = agent(ScriptedModel([call("weird"), reply("it failed")]), weird).run_sync("go")
    assert result.status is RunStatus.COMPLETED
    [called] = kinds(result, EventKind.TOOL_CALLED)
    assert called["outcome"] == "error" and "cannot be serialized to JSON" in called["error"]


# --- broken models ----------------------------------------------------------------------------------------


class Broken(Model):
    """A model adapter with a bug: it raises, or returns something that is not a `ModelResponse`."""

    name = "test:broken"

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome
        self.calls = 0

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome  # type: ignore[return-value]


BROKEN = [
    (ValueError("bad value"), "model adapter failed: ValueError: bad value"),
    (KeyError("choices"), "model adapter failed: KeyError: 'choices'"),
    (TypeError("NoneType is not subscriptable"), "model adapter failed: TypeError: NoneType is not subscriptable"),
    (Unprintable(), "model adapter failed: Unprintable: <its message could not be read: RuntimeError>"),
    ("plain text", "model adapter returned a str, not a ModelResponse"),
    (None, "model adapter returned a NoneType, not a ModelResponse"),
    (ModelResponse(text=42), "model adapter returned a text of type int, not text"),  # type: ignore[arg-type]
    (ModelResponse(tool_calls=("echo",)), "model adapter returned a tool call that is not a ToolCall"),  # type: ignore[arg-type]
    (ModelResponse(tool_calls=(ToolCall("c", "echo", {"text": "x"}),)), "model adapter returned a tool call"),  # type: ignore[arg-type]
    (ModelResponse(text="sure", confidence=float("nan")), "model adapter returned a confidence of nan"),
    (ModelResponse(text="sure", confidence=7), "model adapter returned a confidence of 7"),
]


BROKEN_IDS = ["value-error", "key-error", "type-error", "unprintable", "str", "none", "int-text", "str-call",
              "dict-arguments", "nan-confidence", "confidence-7"]  # fmt: skip


@pytest.mark.parametrize(("outcome", "reason"), BROKEN, ids=BROKEN_IDS)
def test_a_broken_model_adapter_fails_the_run_with_a_reason(outcome: object, reason: str) -> None:
    model = Broken(outcome)
    result = agent(model).run_sync("go")
    assert result.status is RunStatus.FAILED
    assert result.report.reason.startswith(reason)
    [turn] = kinds(result, EventKind.MODEL_CALLED)
    assert turn["error"] == result.report.reason and model.calls == 1, "a deterministic bug is not retried"


def test_a_broken_model_adapter_hands_over_to_the_fallback_model() -> None:
    result = agent(Broken(KeyError("choices")), fallback_models=[ScriptedModel([reply("from the fallback")])]).run_sync(
        "go"
    )
    assert result.status is RunStatus.COMPLETED and result.output == "from the fallback"
    assert kinds(result, EventKind.FALLBACK_USED)[0]["reason"].startswith("model adapter failed: KeyError")


def test_ctrl_c_in_a_model_adapter_stops_the_program() -> None:
    store = MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        agent(Broken(KeyboardInterrupt()), store=store).run_sync("go")
    [run] = asyncio.run(store.list_runs())
    assert run.status is RunStatus.FAILED


@pytest.mark.parametrize(
    "usage",
    [RequestUsage(-10_000_000, -10_000_000), RequestUsage(10, -5), RequestUsage(10**18, 0), RequestUsage(1.5, 2)],  # type: ignore[arg-type]
    ids=["negative", "one-negative", "absurd", "fractional"],
)
def test_usage_that_cannot_be_true_is_charged_at_the_reservation_and_never_credits_money_back(
    usage: RequestUsage,
) -> None:
    def lying(request: ModelRequest) -> ModelResponse:
        n = len(tool_results(request))
        return ModelResponse(tool_calls=(ToolCall(f"c{n}", "echo", f'{{"text": "{n}"}}'),), usage=usage)

    budget = Budget(max_cost_usd=0.05, max_steps=50)
    result = agent(FunctionModel(lying, price=(10.0, 10.0)), budget=budget, max_output_tokens=5).run_sync("go")
    assert result.status is RunStatus.PARTIAL and "budget exhausted" in result.report.reason
    turns = [e for e in result.events if e.kind is EventKind.MODEL_CALLED]
    assert turns and all(e.payload["usage_distrusted"] for e in turns)
    assert all(e.cost_usd > 0 and e.tokens_in >= 0 and e.tokens_out == 5 for e in turns)
    assert 0 < result.usage.cost_usd <= 0.05


# --- broken guards fail closed -----------------------------------------------------------------------------


class RaisingScreen(InjectionScreen):
    def check(self, text: str, context: GuardContext) -> Verdict:
        raise ValueError("screen bug")


class RaisingGuard:
    name = "raising"

    def check(self, text: str, context: GuardContext) -> Verdict:
        raise KeyError("guard bug")


class WrongGuard:
    name = "wrong"

    def check(self, text: str, context: GuardContext) -> Verdict:
        return "looks fine"  # type: ignore[return-value]


def test_a_screen_that_raises_on_the_task_refuses_it() -> None:
    model = ScriptedModel([reply("never asked")])
    result = agent(model, guards=[RaisingScreen()]).run_sync("go")
    assert result.status is RunStatus.REJECTED and result.output is None and model.requests == []
    assert "the guard failed (it raised ValueError: screen bug); failing closed" in result.report.reason


def test_a_screen_that_raises_on_a_tool_output_quarantines_it() -> None:
    class FailsOnToolOutput(InjectionScreen):
        def check(self, text: str, context: GuardContext) -> Verdict:
            if context.origin == "tool_output":
                raise ValueError("screen bug")
            return super().check(text, context)

    model = ScriptedModel([call("echo", text="some page"), reply("done")])
    result = agent(model, guards=[FailsOnToolOutput()]).run_sync("go")
    assert result.status is RunStatus.COMPLETED
    shown = tool_results(model.requests[1])[0].content
    assert shown.startswith("⟦UNTRUSTED DATA from echo") and "> some page" in shown
    [verdict] = kinds(result, EventKind.GUARD_VERDICT)
    assert verdict["verdict"] == "block" and verdict["quarantined"] and "screen bug" in verdict["detail"]


@pytest.mark.parametrize(
    ("guard", "problem"),
    [(RaisingGuard(), "it raised KeyError: 'guard bug'"), (WrongGuard(), "it returned a str, not a Verdict")],
    ids=["raises", "wrong-type"],
)
def test_an_output_guard_that_fails_withholds_the_answer(guard: object, problem: str) -> None:
    result = agent(ScriptedModel([reply("the answer")]), guards=[guard]).run_sync("go")
    assert result.status is RunStatus.REJECTED and result.output is None
    assert (
        result.report.reason == f"the answer was refused by {guard.name}: the guard failed ({problem}); failing closed"
    )


# --- text a store cannot take as it is --------------------------------------------------------------------

NASTY = "a\x00b\ud800c\udfffd"
CLEAN = "a\ufffdb\ufffdc\ufffdd"


def as_json(events) -> str:
    return json.dumps([e.payload for e in events])


def stores(tmp_path: Path) -> list[Store]:
    found: list[Store] = [MemoryStore(), SQLiteStore(tmp_path / "keel.db")]
    if url := os.environ.get("KEEL_TEST_POSTGRES_URL"):
        found.append(open_store(url))
    return found


@tool
def dirty(text: str) -> dict[str, str]:
    """Returns text with NULs and lone surrogates, as keys and values."""
    return {f"k{NASTY}": text + NASTY}


def test_nul_bytes_and_lone_surrogates_are_replaced_the_same_way_in_every_store(tmp_path: Path) -> None:
    first = ModelResponse(
        text=f"thinking {NASTY}",
        tool_calls=(
            ToolCall("c1", "dirty", '{"text": "x\\u0000y"}'),
            ToolCall("c2", "echo", '{"text": "lone \\ud800"}'),  # an escape that parses to a lone surrogate
            ToolCall(f"c3{NASTY}", f"ec{NASTY}ho", "{}"),
        ),
    )
    journals = []
    for store in stores(tmp_path):
        try:
            result = agent(then_answer(first, answer=f"answer {NASTY}"), dirty, echo, store=store).run_sync(
                f"task {NASTY}", session_id=f"s{NASTY}"
            )
            assert result.status is RunStatus.COMPLETED, result.report.reason
            assert result.output == f"answer {CLEAN}"
            stored = asyncio.run(store.events(result.run_id))
            run = asyncio.run(store.get_run(result.run_id))
        finally:
            if hasattr(store, "close"):
                store.close()
        assert run.task == f"task {CLEAN}" and run.session_id == f"s{CLEAN}"
        assert as_json(stored) == as_json(result.events), "the journal is what the run had"
        journals.append([(e.kind, e.payload.get("result"), e.payload.get("reason")) for e in stored])
    assert all(journal == journals[0] for journal in journals)
    results = [r for _, r, _ in journals[0] if r]
    assert results == [f'{{"k{CLEAN}":"x\\u0000y{CLEAN}"}}'.replace("\\u0000", "\ufffd")]
    reasons = [r for kind, _, r in journals[0] if kind is EventKind.TOOL_REJECTED]
    assert len(reasons) == 2 and "not valid JSON" in reasons[0] and "Unknown tool" in reasons[1]
    rejected = [e.payload for e in result.events if e.kind is EventKind.TOOL_REJECTED]
    assert rejected[0]["arguments"] == '{"text": "lone \\ud800"}', "journaled as sent: parsed, it cannot be stored"


def test_a_model_error_message_with_a_lone_surrogate_is_journaled() -> None:
    bad = ModelError(f"upstream said {NASTY}", retryable=False)
    result = agent(ScriptedModel([fail(bad)])).run_sync("go")
    assert result.status is RunStatus.FAILED and CLEAN in result.report.reason


# --- a store that cannot be used ---------------------------------------------------------------------------


def made_store(tmp_path: Path) -> Path:
    path = tmp_path / "keel.db"
    store = SQLiteStore(path)
    try:
        agent(ScriptedModel([reply("ok")]), store=store).run_sync("a first run")
    finally:
        store.close()
    return path


def newer_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 999")
    db.close()


def garbage(path: Path) -> None:
    path.write_bytes(b"not a database " * 200)


def scrambled(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:] = bytes((i * 131 + 7) % 256 for i in range(len(data) - 100))  # every page after the header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (newer_schema, "StoreVersionError: the store at .* has schema version 999, newer than this Keel understands"),
        (garbage, "StoreError: .* is not a Keel store: it is not an SQLite database"),
        (scrambled, "StoreError: the store at .* is corrupt: SQLite cannot read it"),
    ],
    ids=["newer-schema", "not-a-database", "corrupt"],
)
def test_a_store_keel_cannot_use_is_a_clear_error_and_the_file_is_left_as_it_was(
    tmp_path: Path, spoil, error: str
) -> None:
    path = made_store(tmp_path)
    spoil(path)
    before = path.read_bytes()
    with pytest.raises(Exception) as raised:
        agent(ScriptedModel([reply("ok")]), store=str(path)).run_sync("go")
    assert raised.match(error.split(": ", 1)[1]) and type(raised.value).__name__ == error.split(":")[0]
    assert path.read_bytes() == before, "nothing was written into a store Keel cannot use"


def test_a_read_only_store_is_a_clear_error_before_the_run_starts(tmp_path: Path) -> None:
    path = made_store(tmp_path)
    if os.geteuid() == 0:  # root writes through file modes; an immutable file is read-only even for root
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a file read-only here")
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(Exception, match="cannot write to the store at .*readonly database"):
            agent(ScriptedModel([reply("ok")]), store=str(path)).run_sync("go")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    store = SQLiteStore(path)
    try:
        assert [run.task for run in asyncio.run(store.list_runs())] == ["a first run"], "the earlier run is intact"
    finally:
        store.close()
