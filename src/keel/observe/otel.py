"""OpenTelemetry export (O4): each run's journal as spans that follow the GenAI semantic conventions.

```python
observer = OTelObserver.otlp("http://localhost:4318")        # or OTelObserver(tracer_provider=my_provider)
agent = Agent("support", model, tools=[...], observers=[observer])
```

Every run segment (from `run_started` to `run_finished`; a run paused for a person ends its segment, and its
resumption starts a new one with the same ``keel.run.id``, linked to the paused one) becomes an
``invoke_agent {agent}`` span, a child of whatever span is current when the run starts. Each `model_called`
event becomes a ``chat {model}`` child span and each `tool_called` attempt an ``execute_tool {tool}`` child span,
timed from the event's ``ts`` and ``latency_ms``, so a backend shows real durations although the observer only
sees each call once it is over. Retries, fallbacks, loops, escalations, refused budgets, rejected tool calls and
guard findings are span events on the run span.

By default nothing a person wrote or a tool returned is exported: no task, prompt, answer, tool argument or
result, only names, ids, counts and outcomes; run reasons and model errors pass through `redact_pii`.
``capture_content=True`` adds the task, answers and tool payloads (GenAI's opt-in content attributes), each
redacted by `redact_pii` first. Needs the ``otel`` extra: ``pip install 'keel-agents[otel]'``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from keel.errors import MissingDependencyError
from keel.guardrails.pii import redact_pii
from keel.journal import Event, EventKind
from keel.observe.base import RunInfo
from keel.usage import Usage

try:
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError:  # the module stays importable; using the observer names the extra to install
    _HAVE_OTEL = False
else:
    _HAVE_OTEL = True

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.trace import Span, SpanContext, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = ["INSTALL_HINT", "MAX_OPEN_RUNS", "OTelObserver"]

INSTALL_HINT = "pip install 'keel-agents[otel]'"
MAX_OPEN_RUNS = 10_000
"""Run segments tracked at once by default; past it the oldest is ended, so crashed runs cannot pile up."""

_log = logging.getLogger("keel.observe")
_HTTP_STATUS = re.compile(r"(?:HTTP |: |^)([45]\d\d)\b")
"""A provider's HTTP status in a model error (``… (HTTP 503, …``, ``503 Service Unavailable``): its ``error.type``."""
Attributes = dict[str, "AttributeValue"]

_SPAN_EVENTS: dict[EventKind, tuple[str, str]] = {
    EventKind.RETRY_SCHEDULED: ("retry", "attempt delay_s tool call_id model"),
    EventKind.FALLBACK_USED: ("fallback", "from to model degraded call_id"),
    EventKind.LOOP_DETECTED: ("loop", "kind action period step state_hash"),
    EventKind.ESCALATED: ("escalation", "trigger review_ids"),
    EventKind.REVIEW_DECIDED: ("review", "review_id decision"),
    EventKind.GUARD_VERDICT: ("guard", "guard verdict target"),
    EventKind.BUDGET_REFUSED: ("budget", "limit needed remaining window"),
    EventKind.TOOL_REJECTED: ("tool", "tool call_id rejections"),
    EventKind.CACHE_HIT: ("cache", "saved_tokens saved_cost_usd"),
}
"""The span events on a run span: the payload keys each exports (never text that may hold personal data)."""
_SHARED_NAMES = {
    "attempt": "keel.attempt",
    "step": "keel.step",
    "tool": "gen_ai.tool.name",
    "call_id": "gen_ai.tool.call.id",
    "review_id": "keel.review.id",
    "review_ids": "keel.review.ids",
    "guard": "keel.guard.name",
}
"""Payload keys exported under one name whatever the event; any other is ``keel.{group}.{key}``."""
_CAPTURED_REASON = (EventKind.ESCALATED, EventKind.TOOL_REJECTED, EventKind.FALLBACK_USED)
"""Span events whose ``reason`` is exported, redacted, under ``capture_content``."""


@dataclass(slots=True)
class _Segment:
    """One open run span and what its segment spent."""

    span: Span
    usage: Usage = field(default_factory=Usage)


class OTelObserver:
    """Export every observed run as OpenTelemetry spans (GenAI semantic conventions).

    Args:
        tracer_provider: where spans go; None means the global provider (``opentelemetry.trace``), looked up
            when each span starts, so it may be set after the observer is made.
        capture_content: also export the task, answers, tool arguments and results, redacted by `redact_pii`;
            off by default because they may hold personal data.
        max_open_runs: run segments tracked at once; past it the oldest span is ended and dropped.

    Raises:
        MissingDependencyError: the ``otel`` extra (opentelemetry-api) is not installed.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool = False,
        max_open_runs: int = MAX_OPEN_RUNS,
    ) -> None:
        if not _HAVE_OTEL:
            raise MissingDependencyError(
                f"OpenTelemetry export needs opentelemetry-api, which is not installed; install Keel's otel extra: "
                f"{INSTALL_HINT}"
            )
        self.tracer_provider = tracer_provider
        self.capture_content = capture_content
        self.max_open_runs = max(1, max_open_runs)
        self._tracer = trace.get_tracer("keel.observe.otel", tracer_provider=tracer_provider)
        self._open: OrderedDict[str, _Segment] = OrderedDict()
        self._ended: OrderedDict[str, SpanContext] = OrderedDict()
        """The last ended segment of recent runs, so a resumed run's span can link to it (bounded too)."""
        self._owned: SDKTracerProvider | None = None
        self._lock = threading.Lock()  # runs on several threads (run_sync) may share one observer

    @classmethod
    def otlp(
        cls,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        *,
        service_name: str = "keel",
        capture_content: bool = False,
    ) -> OTelObserver:
        """An observer exporting over OTLP/HTTP in the background (SDK provider, batch span processor).

        Args:
            endpoint: the collector, such as ``http://localhost:4318``; ``/v1/traces`` is added when no path is given.
            headers: sent with every export (an API key for a hosted backend).
            service_name: the ``service.name`` resource attribute.
            capture_content: see the class.

        Raises:
            MissingDependencyError: opentelemetry-sdk or opentelemetry-exporter-otlp-proto-http is not installed.
        """
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider as SDKProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise MissingDependencyError(
                f"OTLP export needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http ({exc.name} is "
                f"missing); install Keel's otel extra: {INSTALL_HINT}"
            ) from exc
        if urlsplit(endpoint).path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        provider = SDKProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {})))
        )
        observer = cls(provider, capture_content=capture_content)
        observer._owned = provider
        return observer

    def on_event(self, event: Event, run: RunInfo) -> None:
        """Turn one journal event into spans; never raises into the run."""
        try:
            with self._lock:
                self._handle(event, run)
        except Exception:  # telemetry must not break a run
            _log.exception("OTelObserver failed on %s #%d of %s", event.kind.value, event.seq, event.run_id)

    def shutdown(self) -> None:
        """End the spans still open, and flush and shut down the provider if `otlp` built it (at process exit)."""
        with self._lock:
            while self._open:
                _, segment = self._open.popitem(last=False)
                segment.span.end()
        if self._owned is not None:
            self._owned.shutdown()

    def _handle(self, event: Event, run: RunInfo) -> None:
        if event.kind is EventKind.RUN_STARTED:
            if (stale := self._open.pop(event.run_id, None)) is not None:  # the previous segment never finished
                stale.span.end(end_time=_ns(event.ts))
            self._start(event, run)
            return
        segment = self._open.get(event.run_id) or self._start(event, run)  # e.g. its run_started was evicted
        segment.usage.add_event(event)
        if event.kind is EventKind.MODEL_CALLED:
            self._child(segment, event, *self._chat(event, run))
        elif event.kind is EventKind.TOOL_CALLED:
            self._child(segment, event, *self._tool(event))
        elif event.kind is EventKind.RUN_FINISHED:
            self._finish(segment, event)
        elif (found := self._span_event(event)) is not None:
            segment.span.add_event(f"keel.{event.kind.value}", found, timestamp=_ns(event.ts))

    def _start(self, event: Event, run: RunInfo) -> _Segment:
        payload = event.payload
        attributes: Attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": run.agent,
            **_model(run.model)[1],
            "keel.run.id": run.run_id,
        }
        if run.session_id:
            attributes["gen_ai.conversation.id"] = run.session_id
        if payload.get("resumed"):
            attributes["keel.run.resumed_from"] = str(payload.get("from") or "unknown")
        if self.capture_content and isinstance(payload.get("task"), str):
            attributes["gen_ai.input.messages"] = _messages("user", [_text(payload["task"])])
        previous = self._ended.get(run.run_id)
        span = self._tracer.start_span(
            f"invoke_agent {run.agent}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=[Link(previous)] if previous is not None else None,
            start_time=_ns(event.ts - event.latency_ms / 1000),
        )
        segment = self._open[event.run_id] = _Segment(span)
        while len(self._open) > self.max_open_runs:
            _, oldest = self._open.popitem(last=False)
            oldest.span.set_attribute("keel.observer.dropped", True)
            oldest.span.end()
        return segment

    def _finish(self, segment: _Segment, event: Event) -> None:
        payload, usage, span = event.payload, segment.usage, segment.span
        status, reason = str(payload.get("status", "")), redact_pii(str(payload.get("reason", "")))
        span.set_attributes(
            {
                "keel.run.status": status,
                "keel.run.reason": reason,
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "keel.cost.usd": usage.cost_usd,
            }
        )
        if status == "failed":
            span.set_status(Status(StatusCode.ERROR, reason))
            span.set_attribute("error.type", "failed")
        output = payload.get("output")
        if self.capture_content and output is not None:
            text = output if isinstance(output, str) else json.dumps(output, default=str)
            span.set_attribute("gen_ai.output.messages", _messages("assistant", [_text(text)]))
        span.end(end_time=_ns(event.ts))
        del self._open[event.run_id]
        self._ended[event.run_id] = span.get_span_context()
        self._ended.move_to_end(event.run_id)
        while len(self._ended) > self.max_open_runs:
            self._ended.popitem(last=False)

    def _chat(self, event: Event, run: RunInfo) -> tuple[str, SpanKind, Attributes, str | None]:
        payload = event.payload
        model, request = _model(str(payload.get("model") or run.model))
        attributes: Attributes = {
            "gen_ai.operation.name": "chat",
            **request,
            "gen_ai.usage.input_tokens": event.tokens_in,
            "gen_ai.usage.output_tokens": event.tokens_out,
            "keel.phase": event.phase.value,
            "keel.attempt": int(payload.get("attempt") or 1),
            "keel.cost.usd": event.cost_usd,
        }
        for key, name in (("response_model", "gen_ai.response.model"), ("provider_id", "gen_ai.response.id")):
            if payload.get(key):
                attributes[name] = str(payload[key])
        if payload.get("finish_reason"):
            attributes["gen_ai.response.finish_reasons"] = (str(payload["finish_reason"]),)
        if self.capture_content and "error" not in payload:
            parts = [_text(payload["text"])] if payload.get("text") else []
            for call in payload.get("tool_calls") or ():
                args = redact_pii(str(call.get("arguments", "")))
                parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"), "arguments": args})
            attributes["gen_ai.output.messages"] = _messages("assistant", parts, payload.get("finish_reason"))
        if (error := payload.get("error")) is None:
            return f"chat {model}", SpanKind.CLIENT, attributes, None
        http = _HTTP_STATUS.search(str(error))
        timeout = "timeout" if "timed out" in str(error) else "model_error"
        attributes["error.type"] = http.group(1) if http else "interrupted" if payload.get("interrupted") else timeout
        return f"chat {model}", SpanKind.CLIENT, attributes, redact_pii(str(error))

    def _tool(self, event: Event) -> tuple[str, SpanKind, Attributes, str | None]:
        payload = event.payload
        tool, outcome = str(payload.get("tool", "")), str(payload.get("outcome", "ok"))
        attributes: Attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": str(payload.get("call_id", "")),
            "gen_ai.tool.type": "function",
            "keel.tool.outcome": outcome,
            "keel.attempt": int(payload.get("attempt") or 0),
            "keel.cost.usd": event.cost_usd,
            "keel.phase": event.phase.value,
        }
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = redact_pii(json.dumps(payload.get("arguments"), default=str))
            result = payload.get("result") if outcome == "ok" else payload.get("error")
            if result is not None:
                attributes["gen_ai.tool.call.result"] = redact_pii(str(result))
        if outcome == "ok":
            return f"execute_tool {tool}", SpanKind.INTERNAL, attributes, None
        attributes["error.type"] = outcome
        # A tool's error message can echo its arguments or data: exported only with the content, redacted.
        detail = redact_pii(str(payload["error"])) if self.capture_content and payload.get("error") else outcome
        return f"execute_tool {tool}", SpanKind.INTERNAL, attributes, detail

    def _child(
        self, segment: _Segment, event: Event, name: str, kind: SpanKind, attributes: Attributes, error: str | None
    ) -> None:
        """A child span of the run span that spans the call's real wall time (it ended at ``event.ts``)."""
        span = self._tracer.start_span(
            name,
            context=trace.set_span_in_context(segment.span),
            kind=kind,
            attributes=attributes,
            start_time=_ns(event.ts - event.latency_ms / 1000),
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(event.ts))

    def _span_event(self, event: Event) -> Attributes | None:
        payload, found = event.payload, _SPAN_EVENTS.get(event.kind)
        if found is None or payload.get("verdict") == "pass":  # a guard's pass is no news
            return None
        group, keys = found
        attributes: Attributes = {"keel.phase": event.phase.value}
        for key in keys.split():
            name, value = _SHARED_NAMES.get(key, f"keel.{group}.{key}"), payload.get(key)
            if isinstance(value, str | bool | int | float):
                attributes[name] = value
            elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                attributes[name] = tuple(value)
        if event.kind is EventKind.GUARD_VERDICT:  # the kinds found, never the masked previews
            kinds = {str(f.get("kind")) for f in payload.get("findings") or () if isinstance(f, dict)}
            attributes["keel.guard.findings"] = tuple(sorted(kinds))
        if self.capture_content and event.kind in _CAPTURED_REASON and payload.get("reason"):
            attributes["keel.reason"] = redact_pii(str(payload["reason"]))
        return attributes


def _ns(seconds: float) -> int:
    """Unix seconds as OpenTelemetry's nanoseconds."""
    return int(seconds * 1_000_000_000)


def _model(name: str) -> tuple[str, Attributes]:
    """Keel's ``"openai:gpt-4o-mini"`` as GenAI's model (``gpt-4o-mini``) and request attributes (with the provider)."""
    provider, _, model = name.partition(":")
    if not model:
        return name, {"gen_ai.request.model": name}
    return model, {"gen_ai.request.model": model, "gen_ai.provider.name": provider}


def _text(text: Any) -> dict[str, Any]:
    """A text part of a GenAI message, redacted."""
    return {"type": "text", "content": redact_pii(str(text))}


def _messages(role: str, parts: list[dict[str, Any]], finish_reason: Any = None) -> str:
    """GenAI's message list (``gen_ai.input.messages``/``gen_ai.output.messages``) as the JSON string exported."""
    message: dict[str, Any] = {"role": role, "parts": parts}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return json.dumps([message])
