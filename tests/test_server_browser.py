"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against uvicorn on localhost.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (``.ci/run`` installs it). Without
it these tests skip, except where ``KEEL_REQUIRE_BROWSER`` is set (CI), where a missing browser is a failure.
"""

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dashboard_agents import populate_sync
from keel.server import create_app
from keel.store import SQLiteStore

CHROMIUM = "/usr/bin/chromium"
# As root, in a sandbox with no network: no setuid sandbox, and none of the background calls home that would fail.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("KEEL_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing and KEEL_REQUIRE_BROWSER is set: install Debian's chromium")
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt install chromium)", allow_module_level=True)


class Dashboard:
    """uvicorn serving the dashboard on a free port, in a thread of this process."""

    def __init__(self, store: SQLiteStore, token: str | None = None) -> None:
        app = create_app(store, token=token, live_interval_s=0.2)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start within 10 s"
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    populate_sync(f"sqlite:///{tmp_path / 'keel.db'}", rounds=2)
    return tmp_path / "keel.db"


def test_a_run_appears_live_and_its_trace_opens(page: Page, db: Path, tmp_path: Path) -> None:
    store = SQLiteStore(db)
    with Dashboard(store) as url:
        page.goto(f"{url}/runs")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "open")
        page.evaluate("window.__notReloaded = true")
        (new_run,) = populate_sync(f"sqlite:///{db}", rounds=0)  # another writer: one refund-desk run
        row = page.locator(f'tr[data-run="{new_run}"]')
        expect(row).to_be_visible(timeout=10_000)
        assert page.evaluate("window.__notReloaded") is True  # updated in place, not reloaded

        row.get_by_role("link", name=new_run).click()
        expect(page.get_by_role("heading", name="Decision trace")).to_be_visible()
        lookup = page.locator("li.kind-tool_called details").first
        assert not lookup.evaluate("d => d.open")
        lookup.locator("summary").click()
        expect(lookup.get_by_text("arguments:")).to_be_visible()
        expect(
            page.locator("li.kind-model_called").first.get_by_text("check the order before refunding")
        ).to_be_visible()
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    store.close()
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_an_escalated_run_is_approved_from_the_page_then_completes(
    page: Page, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # `keel resume` imports the agent's module
    refunds = tmp_path / "refunds.txt"
    monkeypatch.setenv("KEEL_TEST_REFUNDS", str(refunds))
    store = SQLiteStore(db)
    with Dashboard(store) as url:
        page.goto(f"{url}/reviews")
        item = page.locator("table.queue tbody tr").first
        expect(item).to_contain_text("refund")
        item.get_by_placeholder("note (optional)").fill("lost parcel confirmed with DHL")
        item.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("Nothing waits for a person.")).to_be_visible()

        page.goto(f"{url}/runs?status=escalated")
        page.locator("table.runs a").first.click()
        expect(page.locator(".review-approved")).to_contain_text("lost parcel confirmed with DHL")
        page.get_by_role("button", name="Resume the run").click()
        expect(page.locator("h1 .status-completed")).to_be_visible(timeout=60_000)  # the page updates itself
        expect(page.locator(".report")).to_contain_text("refunded 49.9 on A-1002")
    store.close()
    assert refunds.read_text() == "A-1002 49.9\n"


def test_a_wrong_token_is_refused_and_the_right_one_lets_in(page: Page, db: Path) -> None:
    store = SQLiteStore(db)
    with Dashboard(store, token="correct-horse") as url:
        page.goto(f"{url}/")
        expect(page.get_by_text("a token is required")).to_be_visible()
        response = page.goto(f"{url}/?token=battery-staple")
        assert response is not None and response.status == 401
        expect(page.get_by_text("wrong token")).to_be_visible()
        page.goto(f"{url}/?token=correct-horse")
        assert "token" not in page.url  # dropped from the address once kept in a cookie
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator("#live-status")).to_have_attribute("data-state", "open")
    store.close()


def test_pages_render_for_screenshots(page: Page, db: Path, tmp_path: Path) -> None:
    store = SQLiteStore(db)
    with Dashboard(store) as url:
        for path in ("/", "/agents", "/reviews", "/api"):
            page.goto(url + path)
            expect(page.locator("main h1")).to_be_visible()
            assert not page.locator("text=Traceback").count()
        page.goto(url + "/")
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    store.close()
    assert (tmp_path / "overview.png").stat().st_size > 10_000
