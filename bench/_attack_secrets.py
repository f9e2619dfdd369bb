"""Attack (d): secrets and personal data put everywhere a run takes text, then looked for in everything that shows it.

An email, a card number, an OpenAI key, an AWS key id, a GitHub token, an IBAN and a phone number go into the task,
the user id, the model's tool arguments, its stated reason and its answer, tool results, a tool's error message and
a review item's arguments. Then the bench reads what operators see — ``keel runs|trace|tools|usage|cost|review``
(tables and ``--json``), every dashboard page and JSON endpoint, ``/metrics``, the OpenTelemetry spans (an
in-memory exporter, with and without ``capture_content``) and every log record at DEBUG — and looks for any 12
characters in a row of each secret (so a secret cut short still counts). The journal keeps content for resume
and is not read here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path

from _attack_table import Report
from starlette.testclient import TestClient
from typer.testing import CliRunner

from keel import Agent, Escalation, SpendLimit, tool
from keel.cli.main import app as cli
from keel.guardrails.review import ReviewQueue
from keel.server import create_app
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, reply

AREA = "d. secrets & PII shown"
TESTS = str(Path(__file__).resolve().parent.parent / "tests")
SECRETS = {
    "email": "jane.roe@example.org",
    "card": "4539 1488 0343 6467",
    "openai key": "sk-proj-Zq8vT3kLmN0pR7sW2xY5bC9dF4gH6jK1",
    "aws key": "AKIAZ7QW3ERTY5UIOP2A",
    "github token": "ghp_R4nd0mT0k3nV4lu3F0rK33lB3nchM4rk01ab",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "phone": "+44 20 7946 0958",
}
ALL = " ".join(f"{kind}: {value}" for kind, value in SECRETS.items())
WINDOW = 12
_REVIEW_FIX = (
    "tests/test_cli_review.py::test_review_commands_show_personal_data_and_secrets_redacted_and_keep_them_in_the_queue"
)
FIXED = {
    "keel review list --status all": _REVIEW_FIX,
    "keel review show": _REVIEW_FIX,
    "logs at DEBUG (every logger)": (
        "tests/test_observe_logs.py::test_a_provider_sdk_logging_requests_at_debug_logs_them_redacted"
    ),
}
"""Outputs that leaked before a fix of this branch, with the regression test of the fix."""


def _forms(value: str) -> set[str]:
    """The secret as written, and without its spaces (a card or IBAN is often shown so).

    An email's domain alone is not the person (the PII guard's masked previews keep it: ``j***@example.org``).
    """
    if "@" in value:
        return {value.split("@", 1)[0] + "@"}
    return {value, value.replace(" ", "")}


def leaks(text: str) -> list[str]:
    """The kinds of secret any 12 consecutive characters of which appear in `text`."""
    found = []
    for kind, value in SECRETS.items():
        windows = {f[i : i + WINDOW] for f in _forms(value) for i in range(max(1, len(f) - WINDOW + 1))}
        if any(w in text for w in windows):
            found.append(kind)
    return found


@tool(trusted=True)
def lookup_customer(email: str) -> dict[str, str]:
    """A customer's record, secrets and all."""
    return {"email": email, "card": SECRETS["card"], "iban": SECRETS["iban"], "phone": SECRETS["phone"]}


@tool(trusted=True)
def rotate_keys(key: str) -> str:
    """Fails, quoting what it was given (as real APIs do)."""
    raise PermissionError(f"key {key} rejected; AWS said {SECRETS['aws key']} is disabled")


@tool(severity="critical", side_effects=True, trusted=True)
def send_payment(iban: str, card: str, note: str) -> str:
    """Pay (always waits for a person)."""
    return "sent"


class Captured(logging.Handler):
    """Every record any logger emits, formatted with its arguments and traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _agents(store: SQLiteStore, observers: list[object]) -> list[tuple[Agent, str]]:
    desk = ScriptedModel(
        [
            dataclasses.replace(call("lookup_customer", email=SECRETS["email"]), reason=f"the task names {ALL}"),
            call("rotate_keys", key=SECRETS["openai key"]),
            reply(f"Customer found: {ALL}", confidence=0.9),
        ],
        usage=(300, 40),
        price=(0.15, 0.6),
    )
    limit = SpendLimit(per_hour_usd=5, scope="user")
    guarded = Agent(
        "pii-desk", desk, tools=[lookup_customer, rotate_keys], store=store, limits=[limit], observers=observers
    )  # type: ignore[arg-type]
    bare = Agent(
        "pii-bare",
        ScriptedModel([call("lookup_customer", email=SECRETS["email"]), reply(f"raw: {ALL}")]),
        tools=[lookup_customer],
        store=store,
        guards=[],
        observers=observers,  # type: ignore[arg-type]
    )
    payer = Agent(
        "pii-payer",
        ScriptedModel([call("send_payment", iban=SECRETS["iban"], card=SECRETS["card"], note=ALL), reply("ok")]),
        tools=[send_payment],
        store=store,
        escalation=Escalation(severity="critical"),
        guards=[],
        observers=observers,  # type: ignore[arg-type]
    )
    return [(guarded, f"Help {ALL}"), (bare, f"Look up {SECRETS['email']}"), (payer, f"Pay {ALL}")]


def _otel() -> tuple[list[object], object] | None:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from keel.observe.otel import OTelObserver
    except ImportError:
        return None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observers: list[object] = [OTelObserver(provider), OTelObserver(provider, capture_content=True)]
    return observers, exporter


def _spans_text(exporter: object) -> str:
    parts = []
    for span in exporter.get_finished_spans():  # type: ignore[attr-defined]
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
        if span.status.description:
            parts.append(span.status.description)
    return "\n".join(parts)


def _cli_outputs(url: str, run_ids: list[str], review_id: str) -> dict[str, str]:
    runner = CliRunner()
    commands = {
        "keel runs": ["runs"],
        "keel usage": ["usage"],
        "keel usage --json": ["usage", "--json"],
        "keel cost": ["cost"],
        "keel cost --json": ["cost", "--json"],
        "keel tools": ["tools"],
        "keel tools --json": ["tools", "--json"],
        "keel review list --status all": ["review", "list", "--status", "all"],
        "keel review show": ["review", "show", review_id],
        **{f"keel trace #{i}": ["trace", run_id] for i, run_id in enumerate(run_ids)},
        **{f"keel trace --json #{i}": ["trace", run_id, "--json"] for i, run_id in enumerate(run_ids)},
    }
    shown = {}
    for name, argv in commands.items():
        result = runner.invoke(cli, [*argv, "--store", url], env={"COLUMNS": "200", "NO_COLOR": "1"})
        shown[name] = result.output + (f"\n[exit {result.exit_code}]" if result.exit_code not in (0, 3) else "")
    return shown


def _dashboard_outputs(store: SQLiteStore, run_ids: list[str]) -> dict[str, str]:
    pages = ["/", "/runs", "/reviews?status=all", "/agents", "/metrics", "/api/overview", "/api/runs", "/api/agents"]
    pages += ["/api/reviews?status=all", *(f"/runs/{r}" for r in run_ids), *(f"/api/runs/{r}" for r in run_ids)]
    with TestClient(create_app(store, resume=False), base_url="http://127.0.0.1") as client:
        return {f"dashboard {page}": client.get(page).text for page in pages}


async def _provider_runs(store: SQLiteStore) -> list[str]:
    """The same secrets through the OpenAI and Anthropic SDKs, to a fake provider on 127.0.0.1 (their logs count)."""
    sys.path.insert(0, TESTS)
    from _fault_server import FaultServer, Reply
    from keel.models.anthropic import AnthropicModel
    from keel.models.openai import OpenAIModel

    run_ids = []
    with FaultServer(Reply(f"noted: {ALL}"), Reply(f"noted: {ALL}")) as server:
        key = SECRETS["openai key"]
        models = [
            OpenAIModel("gpt-test", base_url=server.openai_base_url, api_key=key, max_retries=0),
            AnthropicModel("claude-test", base_url=server.anthropic_base_url, api_key=key, max_retries=0),
        ]
        for model in models:
            result = await Agent("pii-provider", model, store=store, guards=[]).run(f"Remember {ALL}")
            run_ids.append(result.run_id)
            await model.aclose()
    return run_ids


async def attack(report: Report, tmp: Path) -> None:
    """Part (d)."""
    captured, root = Captured(), logging.getLogger()
    old_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)
    url = f"sqlite:///{tmp / 'secrets.db'}"
    store = SQLiteStore(tmp / "secrets.db")
    otel = _otel()
    try:
        run_ids = []
        for agent, task in _agents(store, otel[0] if otel else []):
            result = await agent.run(task, user=SECRETS["email"], session_id="s-1")
            run_ids.append(result.run_id)
        run_ids += await _provider_runs(store)
        [item] = await ReviewQueue(store).pending()
        shown = await asyncio.to_thread(_cli_outputs, url, run_ids, item.id)
        shown.update(await asyncio.to_thread(_dashboard_outputs, store, run_ids))
        if otel is not None:
            shown["OpenTelemetry spans (content off and on)"] = _spans_text(otel[1])
    finally:
        root.removeHandler(captured)
        root.setLevel(old_level)
        store.close()
    shown["logs at DEBUG (every logger)"] = "\n".join(captured.lines)
    for name, text in shown.items():
        found = leaks(text)
        report.add(
            AREA,
            f"{name}: no secret or PII in clear",
            not found,
            f"in clear: {', '.join(found)}",
            fixed=FIXED.get(name, ""),
        )
    report.add(
        AREA,
        "the outputs were read (not empty)",
        all(shown.values()),
        json.dumps({k: len(v) for k, v in shown.items()})[:300],
    )
