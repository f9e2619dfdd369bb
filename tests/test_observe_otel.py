"""OpenTelemetry export (O4): what a tracing backend shows of Keel runs (GenAI semantic conventions)."""

import logging
import subprocess
import sys
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from keel import Agent, Budget, Escalation, EventKind, ReviewQueue, RunStatus, tool
from keel.errors import MissingDependencyError, ModelError
from keel.guardrails import PIIGuard
from keel.journal import Event
from keel.models import ModelRequest, ModelResponse
from keel.observe import Observer, RunInfo
from keel.observe.otel import MAX_OPEN_RUNS, OTelObserver
from keel.recovery import RetryPolicy
from keel.store import MemoryStore
from keel.testing import FunctionModel, ScriptedModel, call, fail, reply

FAST = RetryPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05, jitter=0.01)
EMAIL, CARD, PHONE = "jane.doe@example.com", "4111 1111 1111 1111", "+1 415 555 0100"


@tool(trusted=True)
def get_order(order_id: str) -> str:
    """Look an order up (takes a moment)."""
    time.sleep(0.03)
    return f"order {order_id} shipped"


@tool(trusted=True)
def find_customer(email: str) -> str:
    """Find a customer by email."""
    return f"Jane Doe, {email}, {PHONE}"


@tool(trusted=True)
def flaky_lookup(order_id: str) -> str:
    """A lookup whose upstream is down."""
    raise ConnectionError(f"upstream reset while reading {order_id}")


@tool(severity="high", side_effects=True, trusted=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    return "refunded"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def desk(model, provider, tools=(), *, capture_content: bool = False, **kwargs) -> Agent:
    kwargs.setdefault("guards", [])
    kwargs.setdefault("retry", FAST)
    observer = OTelObserver(tracer_provider=provider, capture_content=capture_content)
    return Agent("desk", model, tools=list(tools), store=MemoryStore(), observers=[observer], **kwargs)


def scripted(*turns) -> ScriptedModel:
    return ScriptedModel(list(turns), usage=(100, 20), price=(1.0, 2.0))


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return sorted(exporter.get_finished_spans(), key=lambda s: (s.start_time, s.name))


def runs(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in finished(exporter) if s.name.startswith("invoke_agent")]


def everything_exported(exporter: InMemorySpanExporter) -> str:
    """All text a backend receives: names, attribute keys and values, statuses, span events."""
    parts = []
    for span in exporter.get_finished_spans():
        parts += [span.name, repr(dict(span.attributes)), str(span.status.description)]
        parts += [f"{e.name} {dict(e.attributes)!r}" for e in span.events]
    return "\n".join(parts)


async def test_a_run_is_an_agent_span_with_chat_and_tool_children_in_order(exporter, provider) -> None:
    agent = desk(scripted(call("get_order", order_id="7"), reply("Order 7 shipped.")), provider, [get_order])
    result = await agent.run("where is order 7?", session_id="s-42")

    assert result.status is RunStatus.COMPLETED
    [run, *children] = finished(exporter)
    assert [s.name for s in children] == ["chat scripted", "execute_tool get_order", "chat scripted"]
    assert run.name == "invoke_agent desk" and run.parent is None and run.kind is trace.SpanKind.INTERNAL
    assert all(s.parent.span_id == run.context.span_id for s in children)
    assert {s.context.trace_id for s in children} == {run.context.trace_id}
    assert dict(run.attributes) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "desk",
        "gen_ai.request.model": "scripted",
        "gen_ai.provider.name": "test",
        "gen_ai.conversation.id": "s-42",
        "keel.run.id": result.run_id,
        "keel.run.status": "completed",
        "keel.run.reason": "answered",
        "gen_ai.usage.input_tokens": result.usage.input_tokens,
        "gen_ai.usage.output_tokens": result.usage.output_tokens,
        "keel.cost.usd": pytest.approx(result.usage.cost_usd),
    }
    assert (result.usage.input_tokens, result.usage.output_tokens) == (200, 40)
    assert run.status.status_code is StatusCode.UNSET

    first_chat, tool_span, last_chat = children
    assert first_chat.kind is trace.SpanKind.CLIENT
    assert dict(first_chat.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "scripted",
        "gen_ai.provider.name": "test",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        "keel.phase": "execution",
        "keel.attempt": 1,
        "keel.cost.usd": pytest.approx(0.00014),
        "gen_ai.response.id": "scripted-1",
        "gen_ai.response.finish_reasons": ("tool_calls",),
    }
    assert last_chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert dict(tool_span.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_order",
        "gen_ai.tool.call.id": "call_1_1",
        "gen_ai.tool.type": "function",
        "keel.tool.outcome": "ok",
        "keel.attempt": 1,
        "keel.cost.usd": 0.0,
        "keel.phase": "execution",
    }
    assert tool_span.status.status_code is StatusCode.UNSET


async def test_child_spans_last_as_long_as_the_calls_did_and_sit_inside_the_run_span(exporter, provider) -> None:
    agent = desk(scripted(call("get_order", order_id="7"), reply("Shipped.")), provider, [get_order])
    result = await agent.run("where is 7?")

    calls = [e for e in result.events if e.kind in (EventKind.MODEL_CALLED, EventKind.TOOL_CALLED)]
    [run, *children] = finished(exporter)
    assert len(children) == len(calls) == 3
    for span, event in zip(children, calls, strict=True):
        assert span.end_time == int(event.ts * 1e9)
        assert abs((span.end_time - span.start_time) - event.latency_ms * 1e6) < 1_000  # ns rounding only
        assert run.start_time <= span.start_time and span.end_time <= run.end_time
    assert children[1].end_time - children[1].start_time >= 30_000_000  # the tool's 30 ms sleep
    assert children[0].end_time <= children[1].start_time <= children[1].end_time <= children[2].start_time


async def test_a_failing_tool_gives_error_spans_and_its_retries_and_degradation_are_span_events(
    exporter, provider
) -> None:
    model = scripted(call("flaky_lookup", order_id="7"), reply("The lookup is down, sorry."))
    result = await desk(model, provider, [flaky_lookup]).run("where is 7?")

    assert result.status is RunStatus.COMPLETED
    tools = [s for s in finished(exporter) if s.name == "execute_tool flaky_lookup"]
    assert [s.attributes["keel.attempt"] for s in tools] == [1, 2, 3]
    for span in tools:
        assert span.status.status_code is StatusCode.ERROR and span.status.description == "error"
        assert span.attributes["error.type"] == "error" and span.attributes["keel.tool.outcome"] == "error"
    [run] = runs(exporter)
    assert [e.name for e in run.events] == ["keel.retry_scheduled", "keel.retry_scheduled", "keel.fallback_used"]
    retry, _, degraded = run.events
    assert retry.attributes["keel.attempt"] == 2 and retry.attributes["gen_ai.tool.name"] == "flaky_lookup"
    assert 0.01 <= retry.attributes["keel.retry.delay_s"] <= 0.05
    assert degraded.attributes["keel.fallback.from"] == "flaky_lookup"
    assert degraded.attributes["keel.fallback.degraded"] is True
    assert "upstream reset" not in everything_exported(exporter)  # a tool's error text may echo its data


async def test_a_failed_run_is_an_error_span_and_so_is_its_failed_model_call(exporter, provider) -> None:
    result = await desk(scripted(fail("provider refused the request")), provider).run("x")

    assert result.status is RunStatus.FAILED
    [run] = runs(exporter)
    assert run.status.status_code is StatusCode.ERROR and "provider refused" in run.status.description
    assert run.attributes["keel.run.status"] == "failed" and run.attributes["error.type"] == "failed"
    assert run.attributes["keel.run.reason"] == result.report.reason
    [chat] = [s for s in finished(exporter) if s.name.startswith("chat")]
    assert chat.status.status_code is StatusCode.ERROR and chat.attributes["error.type"] == "model_error"


def failing_then(failures: list[Exception]):
    queue = list(failures)

    def respond(request: ModelRequest) -> ModelResponse:
        if queue:
            raise queue.pop(0)
        return reply("Done.")

    return respond


async def test_provider_errors_name_their_http_status_and_a_fallback_model_is_a_span_event(exporter, provider) -> None:
    down = ModelError("503 Service Unavailable", retryable=True, status_code=503)
    primary = FunctionModel(failing_then([down] * 10), name="acme:big")
    backup = ScriptedModel([reply("Done by the backup.")], name="other:small")
    result = await desk(primary, provider, fallback_models=[backup]).run("x")

    assert result.status is RunStatus.COMPLETED
    chats = [s for s in finished(exporter) if s.name.startswith("chat")]
    assert [s.name for s in chats] == ["chat big"] * 3 + ["chat small"]
    assert [s.attributes.get("error.type") for s in chats] == ["503", "503", "503", None]
    assert [s.attributes["keel.attempt"] for s in chats[:3]] == [1, 2, 3]
    assert chats[3].attributes["gen_ai.provider.name"] == "other"
    [run] = runs(exporter)
    assert [e.name for e in run.events] == ["keel.retry_scheduled", "keel.retry_scheduled", "keel.fallback_used"]
    switch = run.events[-1].attributes
    assert (switch["keel.fallback.from"], switch["keel.fallback.to"]) == ("acme:big", "other:small")
    assert switch["keel.fallback.model"] is True
    assert run.events[0].attributes["keel.retry.model"] == "acme:big"
    assert run.status.status_code is StatusCode.UNSET


async def test_a_loop_is_a_span_event_and_the_partial_run_is_not_an_error(exporter, provider) -> None:
    model = scripted(*[call("get_order", order_id="1")] * 10)
    result = await desk(model, provider, [get_order]).run("where is order 1?")

    assert result.status is RunStatus.PARTIAL
    [run] = runs(exporter)
    loops = [e.attributes for e in run.events if e.name == "keel.loop_detected"]
    assert [(a["keel.loop.kind"], a["keel.loop.action"]) for a in loops] == [("repeat", "nudge"), ("repeat", "break")]
    assert run.attributes["keel.run.status"] == "partial" and run.status.status_code is StatusCode.UNSET


async def test_refused_budgets_rejected_calls_and_guard_findings_are_span_events_without_their_text(
    exporter, provider
) -> None:
    model = scripted(call("send_mail", to=EMAIL), reply(f"Write to {EMAIL}"))
    await desk(model, provider, budget=Budget(max_cost_usd=0.0003)).run("hi")
    await desk(scripted(reply(f"Write to {EMAIL}")), provider, guards=[PIIGuard(mode="redact")]).run("hi")

    first, second = runs(exporter)
    rejected, refused = first.events
    assert rejected.name == "keel.tool_rejected" and rejected.attributes["gen_ai.tool.name"] == "send_mail"
    assert refused.name == "keel.budget_refused" and refused.attributes["keel.budget.limit"] == "max_cost_usd=0.0003"
    assert refused.attributes["keel.budget.needed"] > refused.attributes["keel.budget.remaining"]
    [verdict] = second.events
    assert verdict.name == "keel.guard_verdict"
    assert dict(verdict.attributes) == {
        "keel.phase": "validation",
        "keel.guard.name": "pii",
        "keel.guard.verdict": "redact",
        "keel.guard.target": "output",
        "keel.guard.findings": ("email",),
    }
    exported = everything_exported(exporter)
    assert EMAIL not in exported and "example.com" not in exported  # not even the guard's masked preview


async def test_an_escalated_run_ends_its_span_and_the_resumed_run_is_a_new_linked_span(exporter, provider) -> None:
    model = scripted(call("refund", order_id="7", amount=5.0), reply("Refunded."))
    agent = desk(model, provider, [refund], escalation=Escalation(severity="high"))
    paused = await agent.run("refund order 7", session_id="s-1")

    assert paused.status is RunStatus.ESCALATED
    [first] = runs(exporter)
    assert first.attributes["keel.run.status"] == "escalated" and first.status.status_code is StatusCode.UNSET
    [escalated] = first.events
    assert escalated.name == "keel.escalated" and escalated.attributes["keel.escalation.trigger"] == "severity"
    queue = ReviewQueue(agent.store)
    [item] = await queue.pending(run_id=paused.run_id)
    assert escalated.attributes["keel.review.ids"] == (item.id,)
    await queue.approve(item.id, by="alice")
    resumed = await agent.resume(paused.run_id)

    assert resumed.status is RunStatus.COMPLETED
    _, second = runs(exporter)
    assert second.attributes["keel.run.id"] == first.attributes["keel.run.id"] == paused.run_id
    assert second.attributes["keel.run.resumed_from"] == "escalated"
    assert second.attributes["gen_ai.conversation.id"] == "s-1"
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert [e.name for e in second.events] == ["keel.review_decided"]
    assert second.events[0].attributes["keel.review.decision"] == "approved"
    children = [s for s in finished(exporter) if s.parent and s.parent.span_id == second.context.span_id]
    assert [s.name for s in children] == ["execute_tool refund", "chat scripted"]
    # each segment carries what it spent; together they are the run's usage
    spent = [
        (s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"]) for s in runs(exporter)
    ]
    assert spent == [(100, 20), (100, 20)]
    assert sum(i for i, _ in spent) == resumed.usage.input_tokens
    assert sum(o for _, o in spent) == resumed.usage.output_tokens


async def test_no_personal_data_prompt_or_tool_payload_is_exported_by_default(exporter, provider) -> None:
    model = scripted(call("find_customer", email=EMAIL), reply(f"Found Jane: {EMAIL}, {PHONE}"))
    await desk(model, provider, [find_customer]).run(f"Who is {EMAIL}? Card {CARD}")

    exported = everything_exported(exporter)
    for secret in (EMAIL, CARD, PHONE, "Jane", "Who is"):
        assert secret not in exported
    keys = {k for s in exporter.get_finished_spans() for k in s.attributes}
    assert not keys & {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments"}


async def test_captured_content_is_exported_redacted(exporter, provider) -> None:
    model = scripted(call("find_customer", email=EMAIL), reply(f"Found Jane: {EMAIL}, {PHONE}"))
    await desk(model, provider, [find_customer], capture_content=True).run(f"Who is {EMAIL}? Card {CARD}")

    exported = everything_exported(exporter)
    for secret in (EMAIL, CARD, PHONE):
        assert secret not in exported
    [run] = runs(exporter)
    assert run.attributes["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "Who is [email]? Card [payment_card]"}]}]'
    )
    assert "Found Jane: [email], [phone]" in run.attributes["gen_ai.output.messages"]
    [tool_span] = [s for s in finished(exporter) if s.name == "execute_tool find_customer"]
    assert tool_span.attributes["gen_ai.tool.call.arguments"] == '{"email": "[email]"}'
    assert tool_span.attributes["gen_ai.tool.call.result"] == "Jane Doe, [email], [phone]"
    first_chat = next(s for s in finished(exporter) if s.name.startswith("chat"))
    assert '"name": "find_customer"' in first_chat.attributes["gen_ai.output.messages"]


async def test_the_run_span_is_a_child_of_the_callers_current_span(exporter, provider) -> None:
    agent = desk(scripted(reply("Hi.")), provider)
    with provider.get_tracer("app").start_as_current_span("POST /chat") as request:
        await agent.run("hello")

    [run] = runs(exporter)
    assert run.parent is not None and run.parent.span_id == request.get_span_context().span_id


def started(run_id: str, ts: float) -> Event:
    return Event(run_id, 1, EventKind.RUN_STARTED, payload={"agent": "desk", "task": "x"}, ts=ts)


def test_open_runs_are_bounded_and_the_oldest_is_ended_and_dropped(exporter, provider) -> None:
    observer = OTelObserver(tracer_provider=provider, max_open_runs=2)
    now = time.time()
    for index in range(3):  # three runs that never finish (their processes crashed)
        observer.on_event(started(f"run-{index}", now + index), RunInfo(f"run-{index}", "desk", "test:m"))

    [dropped] = exporter.get_finished_spans()
    assert dropped.attributes["keel.run.id"] == "run-0" and dropped.attributes["keel.observer.dropped"] is True
    observer.shutdown()  # ends the rest (at process exit)
    assert sorted(s.attributes["keel.run.id"] for s in exporter.get_finished_spans()) == ["run-0", "run-1", "run-2"]
    assert MAX_OPEN_RUNS == 10_000


def test_the_observer_never_raises_into_the_run(provider, caplog) -> None:
    observer = OTelObserver(tracer_provider=provider)
    assert isinstance(observer, Observer)
    broken = Event("run-1", 2, EventKind.TOOL_CALLED, payload={"tool": "t", "attempt": "not a number"})
    with caplog.at_level(logging.ERROR, logger="keel.observe"):
        observer.on_event(broken, RunInfo("run-1", "desk", "test:m"))
    assert "OTelObserver failed on tool_called #2 of run-1" in caplog.text


def test_otlp_builds_a_batching_sdk_provider_that_exports_over_http(monkeypatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    sent: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        OTLPSpanExporter, "export", lambda self, spans: sent.append((self._endpoint, [s.name for s in spans]))
    )
    observer = OTelObserver.otlp("http://collector:4318", headers={"x-api-key": "k"}, service_name="support")

    provider = observer.tracer_provider
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "support"
    [processor] = provider._active_span_processor._span_processors
    assert isinstance(processor, BatchSpanProcessor)
    run = RunInfo("run-1", "desk", "test:m")
    observer.on_event(started("run-1", time.time()), run)
    observer.on_event(Event("run-1", 2, EventKind.RUN_FINISHED, payload={"status": "completed"}), run)
    observer.shutdown()  # flushes the batch: the (stubbed) exporter receives the span, no collector needed
    assert sent == [("http://collector:4318/v1/traces", ["invoke_agent desk"])]


def test_otlp_names_the_extra_when_the_exporter_is_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'keel-agents\[otel\]'"):
        OTelObserver.otlp("http://localhost:4318")


def test_the_module_imports_without_opentelemetry_and_the_observer_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from keel.errors import MissingDependencyError\n"
        "from keel.observe.otel import OTelObserver\n"
        "try:\n    OTelObserver()\nexcept MissingDependencyError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'keel-agents[otel]'" in done.stdout
