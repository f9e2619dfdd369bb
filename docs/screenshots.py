"""Regenerate the dashboard screenshots in docs/ (the README shows them): ``.venv/bin/python docs/screenshots.py``.

Fills a temporary store with a month of synthetic history (bench/dashboard.py's journals, denser in the last day
and hour, so the charts have a shape) and then the scripted support team's runs of tests/dashboard_agents.py (a
refund waiting for review, a loop broken, a provider outage, an email and a card number redacted), serves the
dashboard and photographs the overview and one run's page with Debian's Chromium.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

import uvicorn  # noqa: E402
from dashboard import AGENTS, journal  # noqa: E402
from dashboard_agents import populate_sync  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from keel.server import create_app  # noqa: E402
from keel.store import SQLiteStore  # noqa: E402
from keel.store._sqlite_rollups import UPSERT, rows_of  # noqa: E402
from keel.store._sqlite_rows import INSERT_EVENT, RUN_COLUMNS, event_row  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def history(path: Path) -> None:
    """A month of runs: 40 an hour lately, fewer further back."""
    rng = random.Random(11)
    now = time.time()
    starts = [now - rng.uniform(60, 3600) for _ in range(40)]
    starts += [now - rng.uniform(3600, 86400) for _ in range(23 * 25)]
    starts += [now - rng.uniform(86400, 30 * 86400) for _ in range(2500)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for index, start in enumerate(starts):
        row, events = journal(f"run-{index:016x}", rng.choice(AGENTS), start, rng)
        conn.execute(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 15)})", row)
        conn.executemany(INSERT_EVENT, [event_row(e) for e in events])
        conn.executemany(UPSERT, [r for e in events for r in rows_of(e)])
    conn.execute("COMMIT")
    conn.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keel.db"
        SQLiteStore(path).close()
        history(path)
        run_ids = populate_sync(f"sqlite:///{path}", rounds=3)
        store = SQLiteStore(path)
        config = uvicorn.Config(create_app(store), host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
            page.goto(f"{url}/")
            page.wait_for_selector("#live-status[data-state=open]")
            page.screenshot(path=str(ROOT / "docs" / "dashboard-overview.png"), full_page=True)
            page.goto(f"{url}/runs/{run_ids[0]}")
            page.wait_for_selector("#live-status[data-state=open]")
            page.screenshot(path=str(ROOT / "docs" / "dashboard-run.png"), full_page=True)
            browser.close()
        server.should_exit = True
        store.close()
    print("wrote docs/dashboard-overview.png and docs/dashboard-run.png")


if __name__ == "__main__":
    main()
