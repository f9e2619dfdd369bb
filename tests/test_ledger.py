import asyncio
import math
import sqlite3
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from _processes import start_together
from keel import Event, EventKind
from keel.cost import Refusal, Reservation, SpendLedger, SpendLimit, applicable_limits
from keel.errors import ConfigError, StoreError
from keel.store import MemoryStore, RunRecord, SQLiteStore, Store
from keel.store._migrations import MIGRATIONS, SCHEMA_VERSION

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path: Path):
    s: Store = SQLiteStore(tmp_path / "s.db") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(store, clock) -> SpendLedger:
    return SpendLedger(store, clock=clock)


def query(path: Path, sql: str) -> list[tuple]:
    """Read the file directly, not through the code under test."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def on(limit: SpendLimit, key: str = "agent:support") -> list[tuple[SpendLimit, str]]:
    return [(limit, key)]


async def spend(
    ledger: SpendLedger, limits, usd: float = 0.0, tokens: int = 0, actual: tuple[float, int] | None = None
):
    """Reserve, and settle at once (at the reserved amounts unless `actual` is given)."""
    got = await ledger.reserve("run-1", limits, usd, tokens, ttl_s=60)
    assert isinstance(got, Reservation), got
    await ledger.settle(got, *(actual or (usd, tokens)))
    return got


# --- SpendLimit: configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs at least one of per_hour_usd"),
        ({"scope": "global"}, "needs at least one of"),
        ({"per_hour_usd": 0}, "per_hour_usd must be a finite number above zero, got 0"),
        ({"per_day_usd": -5}, "per_day_usd must be a finite number above zero"),
        ({"per_hour_usd": math.nan}, "per_hour_usd must be a finite number above zero, got nan"),
        ({"per_day_usd": math.inf}, "per_day_usd must be a finite number above zero, got inf"),
        ({"per_hour_tokens": 0}, "per_hour_tokens must be a finite number above zero"),
        ({"per_day_tokens": -1}, "per_day_tokens must be a finite number above zero"),
        ({"per_day_tokens": 1.5}, "per_day_tokens must be a whole number of tokens, got 1.5"),
        ({"per_hour_usd": "5"}, "per_hour_usd must be a number, got '5'"),
        ({"per_hour_usd": True}, "per_hour_usd must be a number, got True"),
        ({"per_hour_usd": 5, "scope": "team"}, "scope must be one of 'agent', 'session', 'user', 'global', got 'team'"),
    ],
)
def test_bad_limits_are_a_clear_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        SpendLimit(**kwargs)


def test_a_limit_lists_its_ceilings_and_normalizes_token_counts():
    limit = SpendLimit(per_day_tokens=1e6, per_hour_usd=5)
    assert limit.per_day_tokens == 1_000_000 and isinstance(limit.per_day_tokens, int)
    assert [(c.name, c.window, c.unit, c.value) for c in limit.ceilings()] == [
        ("per_hour_usd", "hour", "usd", 5),
        ("per_day_tokens", "day", "tokens", 1_000_000),
    ]
    assert limit.scope == "agent"
    assert str(limit) == "SpendLimit(per_hour_usd=5, per_day_tokens=1e+06, scope='agent')"


def test_each_scope_has_its_ledger_key_and_applies_only_when_the_run_has_one():
    run = {"agent": "support", "session_id": "u42", "user": "alice"}
    assert SpendLimit(per_hour_usd=1, scope="agent").key_for(**run) == "agent:support"
    assert SpendLimit(per_hour_usd=1, scope="session").key_for(**run) == "session:u42"
    assert SpendLimit(per_hour_usd=1, scope="user").key_for(**run) == "user:alice"
    assert SpendLimit(per_hour_usd=1, scope="global").key_for(**run) == "global"
    assert SpendLimit(per_hour_usd=1, scope="session").key_for(agent="support") is None
    assert SpendLimit(per_hour_usd=1, scope="user").key_for(agent="support", session_id="u42") is None

    limits = [SpendLimit(per_hour_usd=1, scope=scope) for scope in ("agent", "session", "user", "global")]
    assert [key for _, key in applicable_limits(limits, agent="support")] == ["agent:support", "global"]
    assert [key for _, key in applicable_limits(limits, **run)] == [
        "agent:support",
        "session:u42",
        "user:alice",
        "global",
    ]


@pytest.mark.parametrize(
    ("usd", "tokens", "ttl_s", "message"),
    [
        (-0.01, 0, 60, "USD must be a finite number, zero or more, got -0.01"),
        (math.nan, 0, 60, "USD must be a finite number"),
        (0.1, -1, 60, "tokens must be a whole number, zero or more, got -1"),
        (0.1, 1.5, 60, "tokens must be a whole number"),
        (0.1, 10, 0, "ttl_s must be a finite number of seconds above zero, got 0"),
        (0.1, 10, math.inf, "ttl_s must be a finite number"),
    ],
)
async def test_bad_amounts_are_refused_before_anything_is_reserved(ledger, usd, tokens, ttl_s, message):
    limits = on(SpendLimit(per_hour_usd=1))
    with pytest.raises(ConfigError, match=message):
        await ledger.reserve("run-1", limits, usd, tokens, ttl_s=ttl_s)
    assert (await ledger.totals("agent:support", "hour")).reserved_usd == 0


# --- the windows --------------------------------------------------------------------------------------------------


async def test_per_hour_usd_is_a_rolling_hour(ledger, clock):
    limits = on(SpendLimit(per_hour_usd=1.00))
    await spend(ledger, limits, 0.6)
    refusal = await ledger.reserve("run-2", limits, 0.5, 0, ttl_s=60)
    assert isinstance(refusal, Refusal)
    assert (refusal.key, refusal.window, refusal.unit, refusal.ceiling.name, refusal.ceiling.value) == (
        "agent:support",
        "hour",
        "usd",
        "per_hour_usd",
        1.0,
    )
    assert (refusal.spent, refusal.reserved, refusal.requested) == (0.6, 0.0, 0.5)
    assert refusal.reason == (
        "spending limit per_hour_usd=1 (agent:support) would be crossed: 0.6 USD spent and 0 reserved in the "
        "last hour, 0.5 more requested"
    )
    clock.advance(600)
    await spend(ledger, limits, 0.4)  # exactly up to the ceiling is allowed: money is counted in nano-dollars

    clock.advance(2999)
    assert isinstance(await ledger.reserve("run-3", limits, 0.01, 0, ttl_s=60), Refusal)
    clock.advance(1)  # the first spend is now an hour old
    assert (await ledger.totals("agent:support", "hour")).spent_usd == 0.4
    assert isinstance(await ledger.reserve("run-3", limits, 0.6, 0, ttl_s=60), Reservation)


async def test_per_day_usd_outlasts_the_hour(ledger, clock):
    limits = on(SpendLimit(per_hour_usd=1, per_day_usd=2))
    for _ in range(2):
        await spend(ledger, limits, 0.9)
        clock.advance(3600)
    refusal = await ledger.reserve("run-2", limits, 0.3, 0, ttl_s=60)
    assert isinstance(refusal, Refusal) and refusal.ceiling.name == "per_day_usd" and refusal.window == "day"
    assert refusal.spent == pytest.approx(1.8)
    assert isinstance(await ledger.reserve("run-2", limits, 0.2, 0, ttl_s=86400), Reservation)
    clock.advance(86400 - 2 * 3600 + 1)  # the first 0.9 is now a day old
    totals = await ledger.totals("agent:support", "day")
    assert (totals.spent_usd, totals.reserved_usd) == (0.9, 0.2)
    assert isinstance(await ledger.reserve("run-3", limits, 0.8, 0, ttl_s=60), Reservation)


async def test_per_hour_and_per_day_tokens(ledger, clock):
    limits = on(SpendLimit(per_hour_tokens=1000, per_day_tokens=1500))
    await spend(ledger, limits, tokens=800)
    refusal = await ledger.reserve("run-2", limits, 0, 201, ttl_s=60)
    assert isinstance(refusal, Refusal)
    assert (refusal.ceiling.name, refusal.unit, refusal.spent, refusal.requested) == (
        "per_hour_tokens",
        "tokens",
        800,
        201,
    )
    assert "800 tokens spent" in refusal.reason
    await spend(ledger, limits, tokens=200)
    clock.advance(3600)
    refusal = await ledger.reserve("run-3", limits, 0, 501, ttl_s=60)
    assert isinstance(refusal, Refusal) and refusal.ceiling.name == "per_day_tokens" and refusal.spent == 1000
    await spend(ledger, limits, tokens=500)
    assert (await ledger.totals("agent:support", "day")).spent_tokens == 1500


async def test_money_limits_ignore_tokens_and_token_limits_ignore_money(ledger):
    await spend(ledger, on(SpendLimit(per_hour_usd=1), "user:a"), 0.5, tokens=10**9)
    await spend(ledger, on(SpendLimit(per_hour_tokens=100), "user:b"), 100.0, tokens=50)


# --- reservations -------------------------------------------------------------------------------------------------


async def test_live_reservations_hold_headroom(ledger):
    limits = on(SpendLimit(per_hour_usd=1))
    held = await ledger.reserve("run-1", limits, 0.7, 0, ttl_s=60)
    assert isinstance(held, Reservation)
    refusal = await ledger.reserve("run-2", limits, 0.4, 0, ttl_s=60)
    assert isinstance(refusal, Refusal) and (refusal.spent, refusal.reserved) == (0.0, 0.7)
    totals = await ledger.totals("agent:support", "hour")
    assert (totals.spent_usd, totals.reserved_usd) == (0.0, 0.7)


async def test_settling_lowers_the_window_to_the_actual_spend(ledger):
    limits = on(SpendLimit(per_hour_usd=1))
    await spend(ledger, limits, 0.9, actual=(0.2, 0))
    assert isinstance(await ledger.reserve("run-2", limits, 0.8, 0, ttl_s=60), Reservation)


async def test_settling_above_the_reservation_is_recorded_and_blocks_what_follows(ledger):
    limits = on(SpendLimit(per_hour_usd=1))
    await spend(ledger, limits, 0.1, actual=(1.2, 0))  # the provider billed more than the worst case
    assert (await ledger.totals("agent:support", "hour")).spent_usd == 1.2
    refusal = await ledger.reserve("run-2", limits, 0.0, 0, ttl_s=60)
    assert isinstance(refusal, Refusal) and refusal.spent == 1.2


async def test_release_gives_the_headroom_back(ledger):
    limits = on(SpendLimit(per_hour_usd=1))
    held = await ledger.reserve("run-1", limits, 0.9, 0, ttl_s=60)
    assert isinstance(await ledger.reserve("run-2", limits, 0.2, 0, ttl_s=60), Refusal)
    await ledger.release(held)
    assert isinstance(await ledger.reserve("run-2", limits, 1.0, 0, ttl_s=60), Reservation)
    await ledger.release(held)  # twice: nothing happens


async def test_expired_reservations_stop_counting_but_a_late_settlement_still_counts(ledger, clock):
    limits = on(SpendLimit(per_hour_usd=1))
    abandoned = await ledger.reserve("run-1", limits, 0.9, 0, ttl_s=30)
    assert isinstance(abandoned, Reservation) and abandoned.expires_at == T0 + 30
    clock.advance(29)
    assert isinstance(await ledger.reserve("run-2", limits, 0.2, 0, ttl_s=30), Refusal)
    clock.advance(1)
    assert (await ledger.totals("agent:support", "hour")).reserved_usd == 0
    late = await ledger.reserve("run-2", limits, 0.5, 0, ttl_s=30)  # also purges the expired reservation
    assert isinstance(late, Reservation)
    await ledger.settle(late, 0.5, 0)
    await ledger.settle(abandoned, 0.3, 0)  # a slow call that settles after its expiry: the money was spent
    assert (await ledger.totals("agent:support", "hour")).spent_usd == pytest.approx(0.8)


async def test_a_run_without_applicable_limits_reserves_nothing(ledger):
    free = await ledger.reserve("run-1", [], 1e6, 10**9, ttl_s=60)
    assert isinstance(free, Reservation) and free.keys == ()
    await ledger.settle(free, 1e6, 10**9)
    await ledger.release(free)
    assert (await ledger.totals("global", "day")).spent_usd == 0


# --- scopes -------------------------------------------------------------------------------------------------------


async def test_an_agent_limit_counts_each_agent_apart(ledger):
    limit = SpendLimit(per_hour_usd=1, scope="agent")
    await spend(ledger, applicable_limits([limit], agent="support"), 1.0)
    assert isinstance(await ledger.reserve("r", applicable_limits([limit], agent="support"), 0.01, 0, ttl_s=9), Refusal)
    assert isinstance(
        await ledger.reserve("r", applicable_limits([limit], agent="billing"), 1, 0, ttl_s=9), Reservation
    )


@pytest.mark.parametrize(("scope", "field"), [("session", "session_id"), ("user", "user")])
async def test_session_and_user_limits_are_shared_by_every_agent_of_that_session_or_user(ledger, scope, field):
    limit = SpendLimit(per_hour_usd=1, scope=scope)
    await spend(ledger, applicable_limits([limit], agent="support", **{field: "x"}), 0.8)
    refusal = await ledger.reserve("r", applicable_limits([limit], agent="billing", **{field: "x"}), 0.3, 0, ttl_s=9)
    assert isinstance(refusal, Refusal) and refusal.key == f"{scope}:x"
    other = applicable_limits([limit], agent="billing", **{field: "y"})
    assert isinstance(await ledger.reserve("r", other, 0.3, 0, ttl_s=9), Reservation)
    assert applicable_limits([limit], agent="billing") == []  # no session/user: the limit does not apply


async def test_a_global_limit_counts_everything_and_the_first_crossed_limit_is_named(ledger):
    agent_limit = SpendLimit(per_hour_usd=5, scope="agent")
    global_limit = SpendLimit(per_day_usd=1, scope="global")
    both = [agent_limit, global_limit]
    await spend(ledger, applicable_limits(both, agent="support"), 0.7)
    refusal = await ledger.reserve("r", applicable_limits(both, agent="billing"), 0.4, 0, ttl_s=9)
    assert isinstance(refusal, Refusal)
    assert (refusal.limit, refusal.key, refusal.spent) == (global_limit, "global", 0.7)
    assert (await ledger.totals("agent:support", "hour")).spent_usd == 0.7
    assert (await ledger.totals("agent:billing", "hour")).spent_usd == 0  # a refusal reserved nothing anywhere


# --- storage ------------------------------------------------------------------------------------------------------


async def test_a_store_written_by_the_previous_schema_migrates_and_keeps_everything(tmp_path: Path):
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)  # exactly what Keel wrote before the ledger: migration 1 is never edited
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (run_id, agent, task, model, status, started_at) VALUES ('r1', 'a', 't', 'm', 'completed', 1)"
    )
    conn.execute("INSERT INTO events VALUES ('r1', 1, 'run_started', 'execution', '{\"task\": \"t\"}', 0, 0, 0, 0, 1)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match="schema version 1; run an agent on it"):
        SQLiteStore(path, create=False)  # a read-only open refuses rather than migrates

    store = SQLiteStore(path)
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    run = await store.get_run("r1")
    assert (run.agent, run.status.value) == ("a", "completed")
    assert [(e.seq, e.kind, e.payload) for e in await store.events("r1")] == [(1, EventKind.RUN_STARTED, {"task": "t"})]
    await store.append(Event("r1", 2, EventKind.RUN_FINISHED))
    await spend(SpendLedger(store), on(SpendLimit(per_hour_usd=1)), 0.5)
    store.close()

    reopened = SQLiteStore(path, create=False)
    assert len(await reopened.events("r1")) == 2
    assert (await SpendLedger(reopened).totals("agent:support", "hour")).spent_usd == 0.5
    reopened.close()


async def test_the_ledger_lives_beside_runs_without_needing_one(store):
    await store.create_run(RunRecord("r1", "a", "t", "m"), Event("r1", 1, EventKind.RUN_STARTED))
    await spend(SpendLedger(store), on(SpendLimit(per_hour_usd=1)), 0.5)  # run-1 has no row: the ledger is apart
    assert (await store.get_run("r1")).cost_usd == 0


# --- across processes ---------------------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, random, sys, time
    from pathlib import Path
    from keel.cost import Reservation, SpendLedger, SpendLimit
    from keel.store import SQLiteStore

    path, worker, cycles, barrier = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    LIMITS = [(SpendLimit(per_hour_usd=float(sys.argv[5]), scope="global"), "global")]

    async def main():
        ledger = SpendLedger(SQLiteStore(path))
        rng = random.Random(worker)
        (barrier / f"ready-{worker}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.002)
        granted = refused = 0
        settled_nano = 0
        for i in range(cycles):
            worst = round(rng.uniform(0.01, 0.05), 4)
            got = await ledger.reserve(f"run-{worker}-{i}", LIMITS, worst, 0, ttl_s=60)
            if not isinstance(got, Reservation):
                refused += 1
                continue
            granted += 1
            await asyncio.sleep(rng.uniform(0, 0.002))  # the model call
            if rng.random() < 0.1:
                await ledger.release(got)  # it failed before spending
            else:
                actual = round(rng.uniform(0, worst), 6)
                await ledger.settle(got, actual, 0)
                settled_nano += round(actual * 1e9)
        print(granted, refused, settled_nano)

    asyncio.run(main())
    """
)


def test_processes_sharing_one_store_never_cross_the_ceiling_together(tmp_path: Path):
    path, barrier = tmp_path / "shared.db", tmp_path / "barrier"
    SQLiteStore(path).close()
    ceiling, workers, cycles = 8.0, 6, 200

    def argv(w: int) -> list[str]:
        return [str(path), str(w), str(cycles), str(barrier), str(ceiling)]

    procs = start_together(WORKER, barrier, workers, argv, timeout=60)

    async def watch() -> int:
        # Sample the window while the workers run: settled + live reservations must never exceed the ceiling.
        store, samples = SQLiteStore(path), 0
        while any(p.poll() is None for p in procs):
            totals = await store.spend_totals("global", time.time() - 3600, now=time.time())
            assert totals.settled_nano_usd + totals.reserved_nano_usd <= ceiling * 1e9, totals
            samples += 1
            await asyncio.sleep(0.001)
        store.close()
        return samples

    samples = asyncio.run(asyncio.wait_for(watch(), 60))
    granted = refused = settled_nano = 0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        g, r, s = map(int, out.split())
        granted, refused, settled_nano = granted + g, refused + r, settled_nano + s

    assert granted + refused == workers * cycles
    assert granted > 0 and refused > 0
    assert samples > 10
    ((settled, live),) = query(
        path,
        "SELECT SUM(CASE WHEN expires_at IS NULL THEN nano_usd END), COUNT(expires_at) FROM spend WHERE key = 'global'",
    )
    assert settled <= ceiling * 1e9, f"{settled / 1e9} USD settled against a {ceiling} USD ceiling"
    assert settled == settled_nano, "every settlement the workers made is in the ledger, none twice"
    assert live == 0, "every reservation was settled or released"
    assert settled > ceiling / 2, "the ledger let spend through up to near its ceiling"


CRASHER = textwrap.dedent(
    """
    import asyncio, sys, time
    from keel.cost import SpendLedger, SpendLimit
    from keel.store import SQLiteStore

    ledger = SpendLedger(SQLiteStore(sys.argv[1]))
    limits = [(SpendLimit(per_hour_usd=1.0, scope="global"), "global")]
    held = asyncio.run(ledger.reserve("run-crash", limits, 0.9, 0, ttl_s=float(sys.argv[2])))
    print(held.expires_at, flush=True)
    time.sleep(120)  # the model call, during which the process is killed
    """
)


async def test_a_killed_process_holds_its_reservation_until_the_ttl_then_releases_it(tmp_path: Path):
    path = tmp_path / "crash.db"
    store = SQLiteStore(path)  # opened first, so the checks below start as soon as the process is dead
    ledger = SpendLedger(store)
    limits = [(SpendLimit(per_hour_usd=1.0, scope="global"), "global")]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHER, str(path), "1.5", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    expires_at = float(await asyncio.wait_for(proc.stdout.readline(), 60))
    proc.kill()  # SIGKILL: no cleanup runs
    assert await asyncio.wait_for(proc.wait(), 10) == -9

    blocked = await ledger.reserve("run-2", limits, 0.2, 0, ttl_s=60)
    assert time.time() < expires_at, "the check above ran before the crashed reservation expired"
    assert isinstance(blocked, Refusal) and (blocked.spent, blocked.reserved) == (0.0, 0.9)

    await asyncio.sleep(expires_at - time.time() + 0.05)
    after = await ledger.reserve("run-2", limits, 0.2, 0, ttl_s=60)
    assert isinstance(after, Reservation)
    assert query(path, "SELECT run_id FROM spend") == [("run-2",)], "the crashed process's reservation was purged"
    store.close()
