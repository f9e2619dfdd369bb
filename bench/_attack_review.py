"""Attack (b): one review item decided at the same moment by threads, processes, the dashboard and ``keel review``.

Each round pauses a run before a critical refund (`_attack_review_agent`), then releases at once: threads deciding
through `ReviewQueue`, processes doing the same, processes running ``keel review approve|deny`` and threads posting
to a live dashboard's API (on 127.0.0.1), each picking approve or deny at random. Exactly one may win; every other
must be told it lost (a `ReviewError`, HTTP 409, exit code 2), and the item must carry the winner's decision. Then
as many contenders resume the run at once (threads, processes, ``keel resume``, the dashboard's resume button):
the run must resume exactly once, the refund run once if approved and never if denied.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _attack_review_agent import refunds
from _attack_table import Report

from keel.errors import KeelError, ResumeError, ReviewError
from keel.guardrails.review import ReviewQueue
from keel.journal import EventKind
from keel.result import RunStatus
from keel.store import open_store

HERE = Path(__file__).resolve().parent
AREA = "b. review decided once"

CONTENDER = """
import sys, time
from pathlib import Path
url, target, verb, by, barrier, mode = sys.argv[1:7]
from keel.cli.main import main
from keel.errors import KeelError
from keel.store import open_store
sys.path.insert(0, sys.argv[7])
from _attack_review_agent import refunds
from keel.guardrails.review import ReviewQueue
(Path(barrier) / f"ready-{by}").touch()
while not (Path(barrier) / "go").exists():
    time.sleep(0.001)
if mode == "cli":
    sys.argv = ["keel", *verb.split(), target, *(["--by", by] if verb != "resume" else []), "--store", url]
    main()
try:
    if verb == "resume":
        refunds.with_store(open_store(url)).resume_sync(target)
    else:
        queue = ReviewQueue(open_store(url))
        (queue.approve_sync if verb.endswith("approve") else queue.deny_sync)(target, by=by)
except KeelError as exc:
    print(exc)
    sys.exit(2)
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One contender's result."""

    who: str
    won: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Http:
    """An HTTP answer."""

    status: int
    text: str


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Http:
    """One request with the standard library (loopback only); an error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return Http(answer.status, answer.read().decode())
    except urllib.error.HTTPError as exc:
        return Http(exc.code, exc.read().decode())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dashboard:
    """``keel dashboard`` on 127.0.0.1 in a child process, with the CSRF token its pages carry."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.base = f"http://127.0.0.1:{_free_port()}"
        port = self.base.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "keel", "dashboard", "--store", url, "--port", port]
        self.proc = subprocess.Popen(command, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                page = http("GET", f"{self.base}/reviews").text
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the dashboard did not start") from None
                time.sleep(0.1)
        self.csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

    def post(self, path: str, body: dict[str, str]) -> Http:
        headers = {"X-CSRF-Token": self.csrf, "Content-Type": "application/json"}
        return http("POST", f"{self.base}{path}", json.dumps(body).encode(), headers)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def _spawn(
    url: str, target: str, verb: str, by: str, barrier: Path, mode: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", CONTENDER, url, target, verb, by, str(barrier), mode, str(HERE)]
    return subprocess.Popen(argv, env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _release(barrier: Path, procs: list[subprocess.Popen[bytes]], go: threading.Event) -> None:
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < len(procs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(
                "a contender did not start: "
                + next((p.stderr.read().decode() for p in procs if p.poll() is not None), "")
            )  # type: ignore[union-attr]
        time.sleep(0.01)
    (barrier / "go").touch()
    go.set()


def _thread(go: threading.Event, outcomes: list[Outcome], who: str, work: object) -> threading.Thread:
    def body() -> None:
        go.wait(60)
        try:
            result = work()  # type: ignore[operator]
            ok = not isinstance(result, Http) or result.status < 300
            detail = "" if not isinstance(result, Http) else f"HTTP {result.status} {result.text[:160]}"
            outcomes.append(Outcome(who, ok, detail))
        except (ReviewError, ResumeError) as exc:
            outcomes.append(Outcome(who, False, str(exc)[:200]))
        except KeelError as exc:
            outcomes.append(Outcome(who, False, f"unexpected {type(exc).__name__}: {exc}"[:200]))

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _decide(url: str, review_id: str, verb: str, by: str) -> object:
    store = open_store(url)
    try:
        queue = ReviewQueue(store)
        return (queue.approve_sync if verb == "approve" else queue.deny_sync)(review_id, by=by)
    finally:
        store.close()  # an unclosed PostgreSQL pool collected on another thread cannot join its workers


def _resume(url: str, run_id: str) -> object:
    store = open_store(url)
    try:
        return refunds.with_store(store).resume_sync(run_id)
    finally:
        store.close()


def decide_at_once(
    url: str, review_id: str, dashboard: Dashboard, env: dict[str, str], rng: random.Random
) -> list[Outcome]:
    """3 threads, 2 processes, 2 ``keel review`` and 3 dashboard posts decide one item at once."""
    barrier, go, outcomes = Path(tempfile.mkdtemp(prefix="keel-review-")), threading.Event(), []
    verbs = {name: rng.choice(("approve", "deny")) for name in ("p1", "p2", "cli1", "cli2")}
    procs = {
        name: _spawn(url, review_id, f"review {verb}", name, barrier, "cli" if name.startswith("cli") else "api", env)
        for name, verb in verbs.items()
    }
    threads = []
    for i in range(3):
        verb, by = rng.choice(("approve", "deny")), f"t{i}"
        threads.append(_thread(go, outcomes, by, lambda v=verb, b=by: _decide(url, review_id, v, b)))
        action = rng.choice(("approve", "deny"))
        path, body = f"/api/reviews/{review_id}/{action}", {"by": f"web{i}"}
        threads.append(_thread(go, outcomes, f"web{i}", lambda p=path, b=body: dashboard.post(p, b)))
    _release(barrier, list(procs.values()), go)
    for thread in threads:
        thread.join(60)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        outcomes.append(Outcome(name, proc.returncode == 0, (out + err).decode()[-200:] if proc.returncode else ""))
    return outcomes


def resume_at_once(url: str, run_id: str, dashboard: Dashboard, env: dict[str, str]) -> list[Outcome]:
    """2 threads, 1 process, 2 ``keel resume`` and the dashboard's resume resume one run at once."""
    barrier, go, outcomes = Path(tempfile.mkdtemp(prefix="keel-resume-")), threading.Event(), []
    procs = {
        name: _spawn(url, run_id, "resume", name, barrier, mode, env)
        for name, mode in (("p1", "api"), ("cli1", "cli"), ("cli2", "cli"))
    }
    threads = [_thread(go, outcomes, f"t{i}", lambda: _resume(url, run_id)) for i in range(2)]
    threads.append(_thread(go, outcomes, "web", lambda: dashboard.post(f"/api/runs/{run_id}/resume", {})))
    _release(barrier, list(procs.values()), go)
    for thread in threads:
        thread.join(60)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        outcomes.append(Outcome(name, proc.returncode in (0, 3), (out + err).decode()[-200:]))
    return outcomes


async def _settled(store: object, run_id: str) -> RunStatus:
    """The run's status once no resumption is running any more (bounded)."""
    deadline = time.monotonic() + 60
    while True:
        status = (await store.get_run(run_id)).status  # type: ignore[attr-defined]
        if status not in (RunStatus.RUNNING, RunStatus.ESCALATED) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def one_round(
    report_rows: list[tuple[str, bool, str]],
    url: str,
    dashboard: Dashboard,
    env: dict[str, str],
    effects: Path,
    n: int,
    rng: random.Random,
) -> None:
    store = open_store(url)
    order = f"A-{n}-{rng.randrange(10**6)}"
    paused = await refunds.with_store(store).run(f"refund order {order}")
    [item] = await ReviewQueue(store).pending(run_id=paused.run_id)
    decided = await asyncio.to_thread(decide_at_once, url, item.id, dashboard, env, rng)
    winners = [o for o in decided if o.won]
    final = await ReviewQueue(store).get(item.id)
    untold = [f"{o.who}: {o.detail}" for o in decided if not o.won and f"by {final.decided_by}" not in o.detail]
    report_rows.append(
        (
            "decided exactly once, losers told who was first",
            len(winners) == 1 and final.decided_by == winners[0].who and not untold,
            f"{len(decided)} contenders, winners {[o.who for o in winners]}, item {final.status} by "
            f"{final.decided_by}; " + "; ".join(untold)[:300],
        )
    )
    resumed = await asyncio.to_thread(resume_at_once, url, paused.run_id, dashboard, env)
    status = await _settled(store, paused.run_id)
    events = await store.events(paused.run_id)
    segments = sum(1 for e in events if e.kind is EventKind.RUN_STARTED and e.payload.get("resumed"))
    ran = await asyncio.to_thread(_effects_of, effects, order)
    expected = 1 if final.status == "approved" else 0
    report_rows.append(
        (
            "resumed exactly once; the refund ran once if approved, never if denied",
            segments == 1 and ran == expected and status is RunStatus.COMPLETED,
            f"{len(resumed)} contenders, {segments} resumed segments, refund ran {ran}× ({final.status}), run {status}",
        )
    )
    store.close()


def _effects_of(effects: Path, order: str) -> int:
    return effects.read_text().split().count(order) if effects.is_file() else 0


def _postgres_database(url: str) -> tuple[str, str]:
    """A fresh database on the loopback server (the CLI and dashboard use the default schema): its URL, its name."""
    import psycopg

    name = f"keel_attack_review_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}", name


def _drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def attack(report: Report, tmp: Path, postgres_url: str | None, *, scale: int) -> None:
    """Part (b) on SQLite and, when available, PostgreSQL."""
    rng = random.Random(7)
    targets: list[tuple[str, str, str | None]] = [("sqlite", f"sqlite:///{tmp / 'review.db'}", None)]
    if postgres_url:
        pg_url, name = _postgres_database(postgres_url)
        targets.append(("postgresql", pg_url, name))
    for backend, url, database in targets:
        effects = tmp / f"effects-{backend}.txt"
        env = {**os.environ, "KEEL_ATTACK_EFFECTS": str(effects), "KEEL_STORE": url, "NO_COLOR": "1"}
        os.environ["KEEL_ATTACK_EFFECTS"] = str(effects)
        open_store(url).close()  # created before the dashboard opens it
        dashboard = Dashboard(url, env)
        rows: list[tuple[str, bool, str]] = []
        try:
            for n in range(2 * scale):
                await one_round(rows, url, dashboard, env, effects, n, rng)
        finally:
            dashboard.close()
            if database is not None and postgres_url:
                _drop_database(postgres_url, database)
        for name, held, detail in rows:
            report.add(AREA, f"{name} ({backend})", held, detail)
