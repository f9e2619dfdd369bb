"""The dashboard (`keel.server`): pages, JSON API, security, bad input and the live stream, over a real store."""

import asyncio
import json
import os
import threading
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
from starlette.testclient import TestClient

from dashboard_agents import populate_sync
from keel.errors import ConfigError
from keel.journal import Event, EventKind
from keel.server import create_app, serve
from keel.server.security import is_loopback
from keel.store import SQLiteStore
from keel.store.base import RunRecord

LOCAL = "http://127.0.0.1"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    populate_sync(f"sqlite:///{tmp_path / 'keel.db'}", rounds=2)
    return tmp_path / "keel.db"


@pytest.fixture
def store(db: Path):
    opened = SQLiteStore(db)
    yield opened
    opened.close()


@pytest.fixture
def client(store: SQLiteStore):
    with TestClient(create_app(store), base_url=LOCAL) as c:
        yield c


def _csrf(client: TestClient) -> str:
    """The token the review queue's forms post (what a person's browser sends)."""
    page = client.get("/reviews").text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert token and token in page.split('name="csrf-token" content="', 1)[1]
    return token


def _run_of(client: TestClient, agent: str, task_part: str) -> str:
    runs = client.get("/api/runs", params={"agent": agent}).json()["runs"]
    return next(r["run_id"] for r in runs if task_part in r["task"])


# --- pages and API -----------------------------------------------------------------------------------------------


def test_the_overview_shows_the_figures_charts_limits_and_latest_runs(client: TestClient) -> None:
    data = client.get("/api/overview").json()
    kpis = data["kpis"]
    assert kpis["runs_started"] == 9 and kpis["by_status"] == {
        "completed": 6,
        "escalated": 1,
        "failed": 1,
        "partial": 1,
    }
    assert kpis["error_rate"] == pytest.approx(
        1 / 8
    )  # the escalated run has not ended and kpis["loop_breaks"] == 1 and kpis["reviews_pending"] == 1
    assert kpis["p50_latency_s"] is not None and kpis["p50_latency_s"] <= kpis["p95_latency_s"]
    assert len(data["runs_per_minute"]) >= 60 and sum(p["value"] for p in data["runs_per_minute"]) == 9
    assert sum(p["value"] for p in data["cost_per_hour"]) == pytest.approx(kpis["cost_usd"])
    limits = {(limit["key"], limit["ceiling"]): limit for limit in data["limits"]}
    assert limits[("agent:support", "per_hour_usd")]["limit"] == 2.0 and limits[("global", "per_day_usd")]["spent"] > 0
    assert data["hourly_limit_usd"] == 10.0  # the global one: the chart is everyone's spend
    page = client.get("/")
    assert page.status_code == 200 and page.text.count('<svg class="chart"') == 3
    assert "agent:support" in page.text and "Loop breaks" in page.text


def test_the_runs_list_filters_and_pages(client: TestClient) -> None:
    first = client.get("/api/runs", params={"agent": "support", "limit": 2}).json()
    second = client.get("/api/runs", params={"agent": "support", "limit": 2, "offset": 2}).json()
    assert first["total"] == second["total"] == 4
    assert {r["run_id"] for r in first["runs"]}.isdisjoint(r["run_id"] for r in second["runs"])
    failed = client.get("/api/runs", params={"status": "failed", "since": "1h"}).json()
    assert [r["agent"] for r in failed["runs"]] == ["research"]
    page = client.get("/runs", params={"agent": "support", "limit": 2})
    assert "older →" in page.text and "4 matching" in page.text


def test_a_run_page_shows_decisions_with_reasons_alternatives_and_what_informed_them(client: TestClient) -> None:
    run_id = _run_of(client, "support", "Where is my order")
    detail = client.get(f"/api/runs/{run_id}").json()
    decisions = [e for e in detail["trace"] if e["kind"] == "model_called"]
    assert decisions[0]["reason"] == "the customer asks where order A-1000 is"
    assert decisions[0]["alternatives"] == ["lookup_order", "customer_profile"]
    assert decisions[1]["informed_by"] == [decisions[0]["seq"], decisions[0]["seq"] + 1]  # its call and the result
    assert [c["tool"] for c in detail["tool_calls"]] == ["lookup_order", "customer_profile"]
    assert [row["name"] for row in detail["by_phase"]] == ["execution"] and detail["by_model"][0]["calls"] == 3
    assert detail["report"]["reason"] == "answered" and detail["events_total"] == len(detail["trace"])
    page = client.get(f"/runs/{run_id}").text
    assert "Decision trace" in page and "the customer asks where order A-1000 is" in page


def test_personal_data_and_secrets_never_reach_a_page_or_the_api(client: TestClient) -> None:
    run_id = _run_of(client, "support", "Where is my order")
    for body in (client.get(f"/runs/{run_id}").text, client.get(f"/api/runs/{run_id}").text, client.get("/runs").text):
        assert "jane.doe@example.com" not in body and "4111 1111 1111 1111" not in body
        assert "[email]" in body


def test_html_in_a_tool_output_is_shown_escaped_never_run(client: TestClient) -> None:
    run_id = _run_of(client, "support", "Log the callback")
    page = client.get(f"/runs/{run_id}").text
    assert "<script>alert" not in page and "onerror=alert" not in page.replace("&lt;img src=x onerror=alert", "")
    assert "&lt;script&gt;alert" in page
    assert "script-src 'self'" in client.get(f"/runs/{run_id}").headers["content-security-policy"]


def test_a_huge_payload_is_cut_and_the_page_stays_small(store: SQLiteStore, client: TestClient) -> None:
    huge = "x" * 5_000_000
    asyncio.run(store.create_run(RunRecord("run-huge", "a", huge, "m"), Event("run-huge", 1, EventKind.RUN_STARTED)))
    asyncio.run(store.append(Event("run-huge", 2, EventKind.TOOL_CALLED, payload={"tool": "t", "result": huge})))
    page = client.get("/runs/run-huge")
    assert page.status_code == 200 and len(page.content) < 100_000
    assert len(client.get("/api/runs/run-huge").content) < 100_000


def test_a_long_journal_is_paged(store: SQLiteStore, client: TestClient) -> None:
    asyncio.run(store.create_run(RunRecord("run-long", "a", "t", "m"), Event("run-long", 1, EventKind.RUN_STARTED)))
    for seq in range(2, 451):
        asyncio.run(store.append(Event("run-long", seq, EventKind.CHECKPOINT, payload={"step": seq})))
    first = client.get("/api/runs/run-long").json()
    assert len(first["trace"]) == 200 and first["next_after"] == 200 and first["events_total"] == 450
    last = client.get("/api/runs/run-long", params={"after": 400}).json()
    assert [e["seq"] for e in last["trace"]] == list(range(401, 451)) and last["next_after"] is None


def test_agents_and_their_spend(client: TestClient) -> None:
    agents = {a["agent"]: a for a in client.get("/api/agents", params={"window": "7d"}).json()["agents"]}
    assert set(agents) == {"support", "tracking", "research", "refund-desk"}
    assert agents["research"]["failed"] == 1 and agents["refund-desk"]["escalations"] == 1
    assert agents["support"]["runs"] == 4 and agents["support"]["cost_usd"] > 0
    assert "refund-desk" in client.get("/agents").text


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/runs?status=bogus", "status must be one of"),
        ("/api/runs?limit=0", "limit must be a whole number from 1 to 200"),
        ("/api/runs?limit=abc", "limit must be a whole number"),
        ("/api/runs?offset=-1", "offset must be a whole number"),
        ("/api/runs?since=yesterday", "is not a duration"),
        ("/api/overview?window=2y", "window must be one of 1h, 24h, 7d, 30d"),
        ("/api/reviews?status=maybe", "status must be pending, approved, denied or all"),
    ],
)
def test_a_malformed_filter_is_a_400_that_says_what_is_accepted(client: TestClient, path: str, message: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 400 and message in answer.json()["error"]
    page = client.get(path.removeprefix("/api").replace("/overview", "/"))
    assert page.status_code == 400 and message in page.text and "Traceback" not in page.text


def test_an_unknown_run_is_a_404(client: TestClient) -> None:
    assert client.get("/api/runs/run-nope").status_code == 404
    page = client.get("/runs/run-nope")
    assert page.status_code == 404 and "run-nope" in page.text and "Not found" in page.text


def test_an_unreadable_store_is_a_clear_503_page(db: Path) -> None:
    store = SQLiteStore(db)
    with TestClient(create_app(store), base_url=LOCAL) as client:
        db.write_bytes(b"this is not a database any more" * 200)
        Path(f"{db}-wal").unlink(missing_ok=True)
        Path(f"{db}-shm").unlink(missing_ok=True)
        page = client.get("/")
        assert page.status_code == 503 and "The store is unavailable" in page.text and str(db) in page.text
        assert "Traceback" not in page.text
        assert client.get("/api/runs").status_code == 503
    store.close()


# --- the review queue --------------------------------------------------------------------------------------------


def test_a_reviewer_approves_from_the_page_and_a_cross_site_post_is_refused(
    store: SQLiteStore, client: TestClient
) -> None:
    (item,) = asyncio.run(store.list_reviews(status="pending"))
    assert item.id in client.get("/reviews").text
    forged = client.post(f"/reviews/{item.id}/approve", data={"note": "x"}, follow_redirects=False)
    assert forged.status_code == 403 and "CSRF" in forged.text
    csrf = _csrf(client)
    cross = client.post(
        f"/reviews/{item.id}/approve",
        data={"csrf": csrf},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    assert asyncio.run(store.get_review(item.id)).status == "pending"

    approved = client.post(
        f"/reviews/{item.id}/approve",
        data={"csrf": csrf, "note": "refund ok", "next": "/reviews"},
        follow_redirects=False,
    )
    assert approved.status_code == 303 and approved.headers["location"] == "/reviews"
    decided = asyncio.run(store.get_review(item.id))
    assert (decided.status, decided.decided_by, decided.note) == ("approved", "dashboard", "refund ok")
    again = client.post(f"/reviews/{item.id}/deny", data={"csrf": csrf})
    assert again.status_code == 409 and "already approved by dashboard" in again.text


def test_deciding_an_unknown_review_item_is_a_404_like_an_unknown_run(client: TestClient) -> None:
    """Found by bench/attack.py: an unknown id answered 409 ("could not be done"), the status of a lost decision,
    although the API documents 404 for "no such run or review item"."""
    headers = {"X-CSRF-Token": _csrf(client)}
    answer = client.post("/api/reviews/rev-000000000000/approve", json={"by": "alice"}, headers=headers)
    assert answer.status_code == 404 and "no review item 'rev-000000000000'" in answer.json()["error"]
    page = client.post("/reviews/rev-000000000000/deny", data={"csrf": headers["X-CSRF-Token"]})
    assert page.status_code == 404 and "Not found" in page.text


def test_a_redirect_after_a_decision_stays_on_this_site(store: SQLiteStore, client: TestClient) -> None:
    (item,) = asyncio.run(store.list_reviews(status="pending"))
    answer = client.post(
        f"/reviews/{item.id}/deny",
        data={"csrf": _csrf(client), "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/reviews"


def test_the_api_decides_with_a_bearer_token_and_needs_no_csrf(store: SQLiteStore) -> None:
    (item,) = asyncio.run(store.list_reviews(status="pending"))
    with TestClient(create_app(store, token="s3cret"), base_url=LOCAL) as client:
        answer = client.post(
            f"/api/reviews/{item.id}/deny", json={"note": "no", "by": "ops"}, headers={"Authorization": "Bearer s3cret"}
        )
    assert answer.status_code == 200 and answer.json()["status"] == "denied" and answer.json()["decided_by"] == "ops"


def test_an_escalated_run_is_resumed_from_the_dashboard_and_completes(
    store: SQLiteStore, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # keel resume imports the agent's module
    refunds = tmp_path / "refunds.txt"
    monkeypatch.setenv("KEEL_TEST_REFUNDS", str(refunds))
    (item,) = asyncio.run(store.list_reviews(status="pending"))
    headers = {"X-CSRF-Token": _csrf(client)}
    assert client.post(f"/api/runs/{item.run_id}/resume", headers=headers).status_code == 409  # still pending
    assert client.post(f"/api/reviews/{item.id}/approve", headers=headers, json={}).status_code == 200
    assert client.post(f"/api/runs/{item.run_id}/resume", headers=headers).status_code == 202
    deadline = time.monotonic() + 60
    while asyncio.run(store.get_run(item.run_id)).status.value != "completed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert asyncio.run(store.get_run(item.run_id)).status.value == "completed"
    assert refunds.read_text() == "A-1002 49.9\n"  # exactly once
    while "Resuming…" in (page := client.get(f"/runs/{item.run_id}").text) and time.monotonic() < deadline:
        time.sleep(0.2)  # the run is complete; its process is exiting
    assert "Resumed (exit 0)" in page


# --- access --------------------------------------------------------------------------------------------------------


def test_with_a_token_every_request_needs_it(store: SQLiteStore) -> None:
    with TestClient(create_app(store, token="s3cret"), base_url="http://dash.internal:8765") as client:
        assert client.get("/").status_code == 401
        assert client.get("/api/runs").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/?token=wrong").status_code == 401
        assert client.get("/static/keel.css").status_code == 200
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        entered = client.get("/runs?token=s3cret&agent=support", follow_redirects=False)
        assert entered.status_code == 303 and entered.headers["location"] == "/runs?agent=support"
        assert "HttpOnly" in entered.headers["set-cookie"] and "SameSite=strict" in entered.headers["set-cookie"]
        assert client.get("/runs?agent=support").status_code == 200  # the cookie now carries it


def test_without_a_token_only_local_names_are_served(store: SQLiteStore) -> None:
    with TestClient(create_app(store), base_url="http://attacker.example") as client:
        answer = client.get("/")
    assert answer.status_code == 400 and "localhost only" in answer.text


@pytest.mark.parametrize("host", ["127.0.0.1.evil.example", "127.evil.example:8765", "localhost.evil.example"])
def test_a_name_that_only_looks_local_is_refused(store: SQLiteStore, host: str) -> None:
    with TestClient(create_app(store), base_url=f"http://{host}") as client:
        assert client.get("/").status_code == 400  # DNS rebinding: such a name can point at 127.0.0.1
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("127.0.0.1.nip.io")


def test_a_bearer_header_that_authorizes_nothing_does_not_skip_the_csrf_check(store: SQLiteStore) -> None:
    (item,) = asyncio.run(store.list_reviews(status="pending"))
    with TestClient(create_app(store), base_url=LOCAL) as client:
        forged = client.post(f"/api/reviews/{item.id}/approve", json={}, headers={"Authorization": "Bearer x"})
    assert forged.status_code == 403
    with TestClient(create_app(store, token="s3cret"), base_url=LOCAL) as client:
        client.get("/?token=s3cret")  # the browser holds the cookie
        forged = client.post(f"/api/reviews/{item.id}/approve", json={}, headers={"Authorization": "Bearer "})
    assert forged.status_code in (401, 403) and asyncio.run(store.get_review(item.id)).status == "pending"


def test_the_token_link_never_redirects_to_another_site(store: SQLiteStore) -> None:
    with TestClient(create_app(store, token="s3cret"), base_url=LOCAL) as client:
        answer = client.get("/%2Fevil.example?token=s3cret", follow_redirects=False)  # the path is //evil.example
        assert answer.headers["location"] == "/evil.example"
        # another app on localhost left a malformed cookie: ours is still read
        client.cookies.set("other", 'a"b')
        assert client.get("/runs").status_code == 200


def test_an_unexpected_error_is_a_500_page_without_a_traceback(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug with a secret sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY")

    monkeypatch.setattr("keel.server.pages.overview", broken)
    with TestClient(create_app(store), base_url=LOCAL, raise_server_exceptions=False) as client:
        page = client.get("/")
    assert page.status_code == 500 and "Unexpected error" in page.text
    assert "Traceback" not in page.text and "sk-proj" not in page.text


def test_binding_beyond_loopback_without_a_token_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(ConfigError, match="KEEL_DASHBOARD_TOKEN"):
        serve(store, host="0.0.0.0", port=0)


# --- the API's description and the live stream ------------------------------------------------------------------------


def test_every_get_endpoint_answers_what_the_openapi_document_says(client: TestClient, store: SQLiteStore) -> None:
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1") and "/api/runs/{run_id}" in spec["paths"]
    run_id = asyncio.run(store.list_runs(limit=1))[0].run_id
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue
        schema = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        body = client.get(path.replace("{run_id}", run_id)).json()
        jsonschema.validate(body, {**schema, "components": spec["components"]})
    assert "/api/runs" in client.get("/api").text


def test_the_live_stream_announces_a_change_made_by_another_process(db: Path, store: SQLiteStore) -> None:
    app = create_app(store, live_interval_s=0.05, live_max_s=5)

    def another_writer() -> None:
        time.sleep(0.3)
        other = SQLiteStore(db)
        asyncio.run(other.create_run(RunRecord("run-new", "a", "t", "m"), Event("run-new", 1, EventKind.RUN_STARTED)))
        other.close()

    writer = threading.Thread(target=another_writer)
    with TestClient(app, base_url=LOCAL) as client, client.stream("GET", "/live") as stream:
        writer.start()
        assert stream.headers["content-type"].startswith("text/event-stream")
        started = time.monotonic()
        lines = stream.iter_lines()
        data = next(line for line in lines if line.startswith("data:"))
    writer.join()
    assert json.loads(data.removeprefix("data:")) > 0 and time.monotonic() - started < 5


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path: Path):
    """A SQLite store, and a PostgreSQL one (a schema of its own) when ``KEEL_TEST_POSTGRES_URL`` names a server."""
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "nul.db")
        yield opened
        opened.close()
        return
    url = os.environ.get("KEEL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against")
    import psycopg

    from keel.store.postgres import PostgresStore

    opened = PostgresStore(url, schema=f"keel_test_{uuid.uuid4().hex[:12]}")
    yield opened
    opened.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{opened.schema}" CASCADE')


def test_a_nul_character_in_a_filter_or_an_id_is_bad_input_not_a_store_failure(any_store) -> None:
    """Found by bench/attack.py: on PostgreSQL, ``?agent=%00`` or ``/runs/%00`` answered 503 "the store cannot be
    read" (PostgreSQL refuses NUL in text), sending an operator to look at a healthy database."""
    app = create_app(any_store, resume=False)
    with TestClient(app, base_url=LOCAL) as client:
        for query in ("agent=a%00b", "session=%00"):
            answer = client.get(f"/api/runs?{query}")
            assert answer.status_code == 400 and "NUL" in answer.json()["error"], query
            assert client.get(f"/runs?{query}").status_code == 400
        assert client.get("/api/runs/run-%00").status_code == 404
        assert client.get("/runs/run-%00").status_code == 404
        headers = {"X-CSRF-Token": app.state.keel.guard.csrf}
        assert client.post("/api/reviews/rev-%00/deny", json={}, headers=headers).status_code == 404
