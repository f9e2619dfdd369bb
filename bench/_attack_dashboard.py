"""Attack (c): the dashboard — fuzzed from its OpenAPI, reached off loopback, and fed HTML/JS through run data.

- Escaping: runs whose task, session, tool arguments, tool results, tool errors, model reasons, answers and review
  items carry script payloads; every page (and error pages echoing a malformed parameter) must show them escaped,
  and every response carry the Content-Security-Policy.
- Access: bound off loopback, every route but static assets needs the token (bearer, or the cookie ``?token=``
  sets); without a token only loopback Host names are served (DNS rebinding).
- CSRF: a state-changing request needs the page's CSRF token and a same-origin ``Origin`` (unless a bearer token
  authorized it); a form's ``next`` never redirects off the site; a huge body is refused.
- Fuzz: schemathesis generates valid and invalid requests for every operation of ``/api/openapi.json``, sent to a
  live server on 127.0.0.1 with the CSRF header; a 5xx, an undocumented status, a wrong content type or a body
  that breaks the documented schema counts as broke.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _attack_table import Report
from starlette.testclient import TestClient

from keel import Agent, Escalation, tool
from keel.errors import ConfigError
from keel.guardrails.review import ReviewQueue
from keel.server import create_app
from keel.server.app import check_bind
from keel.store import SQLiteStore
from keel.testing import ScriptedModel, call, reply

AREA_ESCAPE = "c. dashboard: escaping"
AREA_ACCESS = "c. dashboard: token, CSRF"
AREA_FUZZ = "c. dashboard: OpenAPI fuzz"
PAYLOADS = (
    '<script>alert("k1")</script>',
    '"><img src=x onerror=alert("k2")>',
    "'><svg/onload=alert('k3')>",
    '</textarea></pre><script>alert("k4")</script>',
    '<a href="javascript:alert(5)">k5</a>',
    "{{ 7777 * 7 }}",
)
RAW = ("<script>alert(", "<img src=x onerror", "<svg/onload", '<a href="javascript:', "54439")
"""What must never appear in a page: the payloads' markup unescaped, or the template expression evaluated."""
HTML_TEXT = " ".join(PAYLOADS)
FIXED = {
    "a bearer-authorized POST needs no CSRF token (an unknown item: 404)": (
        "tests/test_server.py::test_deciding_an_unknown_review_item_is_a_404_like_an_unknown_run"
    ),
}
"""Cases that broke before a fix of this branch, with the regression test of the fix."""


@tool(trusted=True)
def echo_html(text: str) -> str:
    """Return the text it is given (a tool whose output carries markup)."""
    return f"result: {text}"


@tool(trusted=True)
def broken_html(text: str) -> str:
    """Fail with the text in its error message."""
    raise ValueError(f"cannot parse {text}")


@tool(severity="critical", side_effects=True, trusted=True)
def publish(html: str) -> str:
    """Publish markup (waits for a person)."""
    return "published"


async def payload_store(path: Path) -> tuple[SQLiteStore, list[str]]:
    """A store whose runs carry `PAYLOADS` everywhere a model, a tool or a user can put text."""
    store = SQLiteStore(path)
    model = ScriptedModel(
        [
            dataclasses.replace(call("echo_html", text=HTML_TEXT), reason=HTML_TEXT),
            call("broken_html", text=HTML_TEXT),
            reply(f"Answer: {HTML_TEXT}"),
        ]
    )
    agent = Agent("html-desk", model, tools=[echo_html, broken_html], store=store, guards=[])
    done = await agent.run(f"Task: {HTML_TEXT}", session_id=PAYLOADS[1], user=PAYLOADS[2])

    def publisher() -> Agent:
        script = ScriptedModel([call("publish", html=HTML_TEXT), reply("ok")])
        critical = Escalation(severity="critical")
        return Agent("html-publisher", script, tools=[publish], store=store, escalation=critical, guards=[])

    paused = await publisher().run(f"Publish {HTML_TEXT}")
    [item] = await ReviewQueue(store).pending(run_id=paused.run_id)
    decided = await publisher().run(f"Publish again {HTML_TEXT}")
    [second] = await ReviewQueue(store).pending(run_id=decided.run_id)
    await ReviewQueue(store).deny(second.id, by=PAYLOADS[0], note=HTML_TEXT)
    return store, [done.run_id, paused.run_id, decided.run_id, item.id]


def _pages(run_ids: list[str]) -> list[str]:
    bad = "%3Cscript%3Ealert(%22k9%22)%3C/script%3E"
    return [
        "/",
        "/runs",
        "/runs?agent=html-desk",
        *(f"/runs/{run_id}" for run_id in run_ids[:3]),
        "/reviews",
        "/reviews?status=all",
        "/agents",
        "/api",
        f"/runs/{bad}",
        f"/runs?status={bad}",
        f"/runs?since={bad}",
        f"/?window={bad}",
        f"/reviews?status={bad}",
        f"/runs/{run_ids[0]}?after={bad}",
    ]


def check_escaping(report: Report, store: SQLiteStore, run_ids: list[str]) -> None:
    with TestClient(create_app(store, resume=False), base_url="http://127.0.0.1") as client:
        for page in _pages(run_ids):
            for fragment in ("0", "1"):
                response = client.get(page, headers={"X-Keel-Fragment": fragment})
                found = [raw for raw in RAW if raw in response.text]
                csp = "script-src 'self'" in response.headers.get("content-security-policy", "")
                report.add(
                    AREA_ESCAPE,
                    f"{page} {'fragment' if fragment == '1' else 'page'}: payloads escaped, CSP set",
                    not found and csp and response.status_code < 500,
                    f"HTTP {response.status_code}, unescaped: {found}, CSP: {csp}",
                )
        shown = client.get(f"/runs/{run_ids[0]}").text
        report.add(
            AREA_ESCAPE,
            "the payloads are shown (escaped), not dropped",
            "&lt;script&gt;alert(" in shown,
            "the run page shows the task's markup as text",
        )


def _access_cases(client: TestClient, token: str) -> list[tuple[str, bool, str]]:
    routes = (
        "/",
        "/runs",
        "/reviews",
        "/agents",
        "/api",
        "/api/runs",
        "/api/overview",
        "/metrics",
        "/api/openapi.json",
    )
    cases: list[tuple[str, bool, str]] = []
    for route in routes:
        codes = (
            client.get(route).status_code,
            client.get(route, headers={"Authorization": "Bearer wrong"}).status_code,
            client.get(route, headers={"Authorization": f"Bearer {token}"}).status_code,
        )
        cases.append(
            (
                f"off loopback {route}: 401 without or with a wrong token, 200 with it",
                codes == (401, 401, 200),
                str(codes),
            )
        )
    entered = client.get(f"/runs?token={token}&status=completed", follow_redirects=False)
    location = entered.headers.get("location", "")
    cookie = entered.headers.get("set-cookie", "")
    cases.append(
        (
            "?token= sets an HttpOnly SameSite=Strict cookie and drops the token from the address",
            entered.status_code == 303
            and token not in location
            and "httponly" in cookie.lower()
            and "samesite=strict" in cookie.lower(),
            f"HTTP {entered.status_code} → {location}; {cookie[:80]}",
        )
    )
    wrong = client.get("/runs?token=nope", follow_redirects=False).status_code
    cases.append(("a wrong ?token= is refused", wrong == 401, f"HTTP {wrong}"))
    static = client.get("/static/keel.css").status_code
    cases.append(("static assets need no token", static == 200, f"HTTP {static}"))
    client.cookies.set("keel_token", token)
    posted = client.post("/api/reviews/rev-000000000000/approve", json={"by": "x"}).status_code
    cases.append(("a cookie-authorized POST without the CSRF token is refused", posted == 403, f"HTTP {posted}"))
    client.cookies.clear()
    bearer = client.post(
        "/api/reviews/rev-000000000000/approve", json={"by": "x"}, headers={"Authorization": f"Bearer {token}"}
    ).status_code
    cases.append(
        ("a bearer-authorized POST needs no CSRF token (an unknown item: 404)", bearer == 404, f"HTTP {bearer}")
    )
    return cases


def _csrf_cases(client: TestClient, csrf: str, review_id: str) -> list[tuple[str, bool, str]]:
    api = f"/api/reviews/{review_id}/approve"
    attempts = {
        "no CSRF token": ({}, None),
        "a wrong CSRF token": ({"X-CSRF-Token": "x" * 43}, None),
        "a cross-site Origin": ({"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, None),
        "Origin: null": ({"X-CSRF-Token": csrf, "Origin": "null"}, None),
    }
    cases = []
    for what, (headers, _) in attempts.items():
        code = client.post(api, json={"by": "mallory"}, headers=headers).status_code
        cases.append((f"POST with {what} is refused (403)", code == 403, f"HTTP {code}"))
    huge = client.post(api, content=b"x" * 70_000, headers={"X-CSRF-Token": csrf}).status_code
    cases.append(("a 70 kB body is refused (413)", huge == 413, f"HTTP {huge}"))
    code = client.get(api).status_code
    cases.append(("GET never decides (405)", code == 405, f"HTTP {code}"))
    for target in (
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example",
        "\t//evil.example",
        "/%2F/evil.example",
        "javascript:alert(1)",
    ):
        form = {"csrf": csrf, "by": "alice", "next": target}
        answer = client.post("/reviews/rev-000000000000/approve", data=form, follow_redirects=False)
        location = answer.headers.get("location", "")
        local = answer.status_code != 303 or (
            location.startswith("/") and not location.startswith(("//", "/\\", "/%5C", "/%5c"))
        )
        cases.append(
            (f"a form's next={target!r} stays on the site", local, f"HTTP {answer.status_code} → {location!r}")
        )
    return cases


def check_access(report: Report, store: SQLiteStore, review_id: str) -> None:
    token = "t0ken-" + "s" * 32
    with TestClient(create_app(store, token=token, resume=False), base_url="http://dashboard.example") as client:
        for name, held, detail in _access_cases(client, token):
            report.add(AREA_ACCESS, name, held, detail, fixed=FIXED.get(name, ""))
    with TestClient(create_app(store, resume=False), base_url="http://dashboard.example") as client:
        for host in ("dashboard.example", "127.0.0.1.evil.example", "localhost.evil.example"):
            code = client.get("/", headers={"host": host}).status_code
            report.add(AREA_ACCESS, f"no token: Host {host} refused (DNS rebinding)", code == 400, f"HTTP {code}")
    try:
        check_bind("0.0.0.0", None)
        report.add(AREA_ACCESS, "binding 0.0.0.0 without a token is refused", False, "no error")
    except ConfigError:
        report.add(AREA_ACCESS, "binding 0.0.0.0 without a token is refused", True)
    app = create_app(store, resume=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for name, held, detail in _csrf_cases(client, app.state.keel.guard.csrf, review_id):
            report.add(AREA_ACCESS, name, held, detail)


def _serve(app: Any) -> tuple[str, Any]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server


def _fuzz_operation(
    operation: Any, mode: Any, examples: int, seed: int, headers: dict[str, str]
) -> tuple[Counter[int], list[str]]:
    """Send `examples` generated requests for one operation; the statuses seen and the checks that failed."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    @fixed_seed(seed)
    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def attack(case: Any) -> None:
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except Exception as exc:  # a failed check: counted, and the fuzz goes on
            sent = f"{case.path_parameters or ''}{case.query or ''}{case.body if case.body is not None else ''}"
            failures.append(f"HTTP {response.status_code} {sent[:200]}: {str(exc).splitlines()[1:3]}")

    try:
        attack()
    except Exception as exc:  # hypothesis could not build inputs (e.g. no invalid path string exists)
        if "Unsatisfiable" not in type(exc).__name__:
            failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    return statuses, failures


def fuzz(report: Report, store: SQLiteStore, *, examples: int, seed: int) -> None:
    """Every operation of the OpenAPI document, valid and invalid requests, against a live server on loopback."""
    try:
        import schemathesis
        from schemathesis import GenerationMode
    except ImportError:
        report.add(AREA_FUZZ, "schemathesis installed (extra 'bench')", False, "pip install -e '.[bench]'")
        return
    app = create_app(store, resume=False)
    base, server = _serve(app)
    headers = {"X-CSRF-Token": app.state.keel.guard.csrf}
    try:
        schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                statuses, failures = _fuzz_operation(operation, mode, examples, seed, headers)
                if not statuses and not failures:
                    continue  # no invalid request exists for it (a path of plain strings)
                report.add(
                    AREA_FUZZ,
                    f"{operation.label} ({mode.value}): no 5xx, documented statuses, types and bodies",
                    not failures,
                    f"{sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}; "
                    + "; ".join(failures[:3]),
                )
    finally:
        server.should_exit = True


async def attack(report: Report, tmp: Path, *, examples: int, seed: int) -> None:
    """Part (c)."""
    store, ids = await payload_store(tmp / "dashboard.db")
    try:
        await asyncio.to_thread(check_escaping, report, store, ids)
        await asyncio.to_thread(check_access, report, store, ids[3])
        await asyncio.to_thread(fuzz, report, store, examples=examples, seed=seed)
    finally:
        store.close()
