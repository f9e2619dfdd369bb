"""Attack (a): spend ceilings under several processes of many concurrent runs, some SIGKILLed mid-call.

Live holds. Worker processes (`_attack_spend_worker`) run concurrent agent runs against one global hourly ceiling
on a shared store; the driver SIGKILLs some of them while their model calls are in flight, starts replacements, and
samples the ledger the whole time: settled spend plus live reservations must never pass the ceiling. At the end
every survivor's reservation must be settled or released; the dead ones' holds stay live (they may have been
spent) until their runs are resumed, which charges them at their worst case. The runs' recorded costs must then
equal the ledger's settled spend, within the ceiling.

Expired holds (known, issue 23). A reservation whose process was killed stops counting when its TTL expires, and
fresh processes reuse that headroom; if the killed call had reached the provider, what was billed passes the
ceiling. Measured with the ledger directly (a 1 s TTL), reported, not fixed here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from _attack_spend_worker import agent, open_shared
from _attack_table import Report

from keel.cost import Reservation, SpendLedger, SpendLimit
from keel.recovery import find_interrupted
from keel.result import RunStatus
from keel.store.base import Store

HERE = Path(__file__).resolve().parent
WORKER = (HERE / "_attack_spend_worker.py").read_text()
AREA = "a. spend ceilings"
NANO = 1e9


@dataclass
class Backend:
    """A store every process of one scenario shares: a SQLite file, or a fresh PostgreSQL schema."""

    name: str
    url: str
    schema: str = ""
    path: Path | None = None

    def open(self) -> Store:
        return open_shared(self.url, self.schema)

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        """Read the ledger directly, not through the code under test (``{s}`` is the schema's prefix)."""
        if self.path is not None:
            with closing(sqlite3.connect(self.path)) as conn:
                return conn.execute(sql.format(s="")).fetchall()
        import psycopg

        with psycopg.connect(self.url) as conn:
            return [tuple(r) for r in conn.execute(sql.format(s=f'"{self.schema}".')).fetchall()]

    def drop(self) -> None:
        if self.schema:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@dataclass
class Watch:
    """What the driver saw while the workers ran."""

    samples: int = 0
    worst_nano: int = 0
    over: list[str] = field(default_factory=list)


def backends(tmp: Path, postgres_url: str | None, tag: str) -> list[Backend]:
    found = [Backend("sqlite", f"sqlite:///{tmp / f'{tag}.db'}", path=tmp / f"{tag}.db")]
    if postgres_url:
        found.append(Backend("postgresql", postgres_url, schema=f"keel_attack_{tag}_{os.getpid()}"))
    return found


def _start(backend: Backend, worker: int, runs: int, ceiling: float, barrier: Path) -> subprocess.Popen[bytes]:
    argv = [backend.url, backend.schema, str(worker), str(runs), str(ceiling), str(barrier)]
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=HERE
    )


def _busy(barrier: Path, worker: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until `worker` has a quarter of its runs' model calls started: a kill then lands mid-call."""
    deadline = time.monotonic() + 60
    while not (barrier / f"busy-{worker}").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def _start_all(
    backend: Backend, workers: int, runs: int, ceiling: float, barrier: Path
) -> list[subprocess.Popen[bytes]]:
    """Start the workers and release them together once every one is ready."""
    procs = [_start(backend, w, runs, ceiling, barrier) for w in range(workers)]
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < workers:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a spend worker did not start: {procs[0].stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.01)
    (barrier / "go").touch()
    return procs


async def _watch(store: Store, procs: list[subprocess.Popen[bytes]], ceiling: float, watch: Watch) -> None:
    while any(p.poll() is None for p in procs):
        now = time.time()
        totals = await store.spend_totals("global", now - 3600, now=now)
        held = totals.settled_nano_usd + totals.reserved_nano_usd
        watch.samples += 1
        watch.worst_nano = max(watch.worst_nano, held)
        if held > ceiling * NANO and len(watch.over) < 3:
            watch.over.append(f"{held / NANO:.4f} USD settled+held at sample {watch.samples}")
        await asyncio.sleep(0.002)


async def live_holds(report: Report, backend: Backend, *, workers: int, runs: int, kills: int, seed: int) -> None:
    """Workers × concurrent runs, `kills` of them SIGKILLed mid-call and replaced; the ceiling checked throughout."""
    rng = random.Random(seed)
    ceiling = round(workers * runs * 0.24 * 0.5, 2)  # about half of what the runs would spend unbounded
    store = backend.open()  # creates the store (and its schema) before the workers open it
    barrier = Path(tempfile.mkdtemp(prefix="keel-attack-barrier-"))
    procs = _start_all(backend, workers, runs, ceiling, barrier)
    watch = Watch()
    watcher = asyncio.create_task(_watch(store, procs, ceiling, watch))
    killed: list[subprocess.Popen[bytes]] = []
    for victim in rng.sample(range(workers), kills):
        await asyncio.to_thread(_busy, barrier, victim, procs[victim])
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        if procs[victim].poll() is None:
            procs[victim].send_signal(signal.SIGKILL)
            killed.append(procs[victim])
        procs.append(_start(backend, workers + len(killed), runs, ceiling, barrier))  # a replacement, at once
    await asyncio.wait_for(watcher, 180)  # it returns once every worker has exited
    statuses: dict[str, int] = {}
    for proc in procs:
        if proc not in killed:
            out, err = proc.communicate()
            if proc.returncode != 0:
                report.add(AREA, f"worker exits cleanly ({backend.name})", False, err.decode()[-500:])
                continue
            for status, n in json.loads(out).items():
                statuses[status] = statuses.get(status, 0) + n
    where = f"{backend.name}, {workers} procs × {runs} runs, {len(killed)} SIGKILLed mid-call"
    await _check_live(report, backend, store, ceiling, watch, where, killed=len(killed))
    await _check_resumed(report, backend, store, ceiling, where)
    store.close()


async def _check_live(
    report: Report, backend: Backend, store: Store, ceiling: float, watch: Watch, where: str, *, killed: int
) -> None:
    worst = watch.worst_nano / NANO
    report.add(
        AREA,
        f"settled + live holds ≤ ceiling while running ({where})",
        not watch.over and watch.samples > 10,
        f"{watch.samples} samples, worst {worst:.4f} of {ceiling} USD; " + "; ".join(watch.over),
    )
    stray = backend.rows(
        "SELECT s.run_id, r.status FROM {s}spend s LEFT JOIN {s}runs r ON r.run_id = s.run_id "
        "WHERE s.expires_at IS NOT NULL AND (r.status IS NULL OR r.status <> 'running')"
    )
    dead = backend.rows("SELECT COUNT(*) FROM {s}spend WHERE expires_at IS NOT NULL")[0][0]
    report.add(
        AREA,
        f"every live hold belongs to a killed run; survivors settled or released all ({where})",
        not stray,
        f"{dead} holds left live by {killed} killed processes; strays: {stray[:3]}",
    )


async def _check_resumed(report: Report, backend: Backend, store: Store, ceiling: float, where: str) -> None:
    desk = agent(store, ceiling)
    interrupted = await find_interrupted(store, limit=10_000, include_unknown=False)
    ended = [await desk.resume(i.run.run_id) for i in interrupted]
    left = [r.run_id for r in ended if r.status is RunStatus.RUNNING]
    live = backend.rows("SELECT COUNT(*) FROM {s}spend WHERE expires_at IS NOT NULL")[0][0]
    report.add(
        AREA,
        f"killed runs resumed: their holds settled at worst case, none left live ({where})",
        live == 0 and not left,
        f"{len(interrupted)} runs resumed; {live} holds still live; still running: {left[:3]}",
        fixed="tests/test_spend_limits.py::test_a_hold_its_process_died_before_journaling_is_given_back_when_the_run_resumes",
    )
    (settled,) = backend.rows("SELECT COALESCE(SUM(nano_usd), 0) FROM {s}spend WHERE expires_at IS NULL")[0]
    (charged,) = backend.rows("SELECT COALESCE(SUM(cost_usd), 0) FROM {s}runs")[0]
    report.add(
        AREA,
        f"after resume: ledger ≤ ceiling and equal to the runs' recorded cost ({where})",
        int(settled) <= ceiling * NANO and abs(int(settled) / NANO - float(charged)) < 1e-6,  # type: ignore[arg-type]
        f"ledger {int(settled) / NANO:.4f} USD, runs {float(charged):.4f} USD, ceiling {ceiling}",  # type: ignore[arg-type]
        fixed="tests/test_spend_limits.py::test_a_call_journaled_but_not_settled_when_its_process_died_is_settled_at_its_cost_on_resume",
    )


CRASHER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[3])
from _attack_spend_worker import open_shared
from keel.cost import SpendLedger, SpendLimit
ledger = SpendLedger(open_shared(sys.argv[1], sys.argv[2]))
limits = [(SpendLimit(per_hour_usd=float(sys.argv[4]), scope="global"), "global")]
held = asyncio.run(ledger.reserve("run-killed", limits, float(sys.argv[5]), 0, ttl_s=1.0))
print(type(held).__name__, flush=True)
time.sleep(60)  # the provider call, during which the process is killed: it may have been billed
"""


def _reserve_and_die(backend: Backend, kills: int, ceiling: float, each: float) -> int:
    """`kills` processes each reserve `each` USD, then are SIGKILLed during their call; how many got a hold."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CRASHER, backend.url, backend.schema, str(HERE), str(ceiling), str(each)],
            stdout=subprocess.PIPE,
        )
        for _ in range(kills)
    ]
    granted = sum(p.stdout.readline().strip() == b"Reservation" for p in procs)  # type: ignore[union-attr]
    for p in procs:
        p.kill()
        p.wait()
    return granted


async def expired_holds(report: Report, backend: Backend, *, kills: int) -> None:
    """Killed holds expire and their headroom is reused: billed spend can pass the ceiling (issue 23)."""
    ceiling, each = 0.40, 0.069
    store = backend.open()
    granted = _reserve_and_die(backend, kills, ceiling, each)
    await asyncio.sleep(1.2)  # past the holds' TTL
    ledger, limits = SpendLedger(store), [(SpendLimit(per_hour_usd=ceiling, scope="global"), "global")]
    settled = 0.0
    for i in range(40):
        got = await ledger.reserve(f"run-fresh-{i}", limits, each, 0, ttl_s=60)
        if not isinstance(got, Reservation):
            break
        await ledger.settle(got, each, 0)
        settled += each
    billed = settled + granted * each
    report.add(
        AREA,
        f"billed ≤ ceiling after killed holds expire ({backend.name}, {kills} killed)",
        billed <= ceiling + 1e-9,
        f"billed {billed:.3f} USD (settled {settled:.3f} + {granted} killed calls × {each}) vs ceiling {ceiling}",
        known="issue 23",
    )
    store.close()


async def attack(report: Report, tmp: Path, postgres_url: str | None, *, scale: int, seed: int) -> None:
    """Part (a) on every backend available."""
    for backend in backends(tmp, postgres_url, "spend"):
        try:
            await live_holds(report, backend, workers=6, runs=20 * scale, kills=2 * scale, seed=seed)
        finally:
            backend.drop()
    for backend in backends(tmp, postgres_url, "expiry"):
        try:
            await expired_holds(report, backend, kills=3)
        finally:
            backend.drop()
