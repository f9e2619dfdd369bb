"""PostgreSQL schema, versioned: migration N brings a store from version N-1 to N, as in SQLite (`_migrations`).

The migrations mirror SQLite's one for one, with the same numbers, tables and columns in PostgreSQL's types: TEXT
for JSON (the very text SQLite keeps, so payloads round-trip exactly: key order, NaN and all), DOUBLE PRECISION for
times and money, BIGINT for counts and nano-dollars. Everything lives in the store's own schema (``{s}`` below),
named in every statement and function, so nothing depends on a session's ``search_path``.

What PostgreSQL adds: ``changes``, a change counter in 16 shards that triggers bump once in every transaction that
writes (at its commit; `data_version` sums it), and the applied migrations in ``schema_version``. Migrating happens
in one transaction under an advisory lock: of several processes opening a new store at once, one migrates and the
others wait for it, then find nothing to do. Later issues append to `MIGRATIONS`; never edit a released migration.
"""

from __future__ import annotations

from collections.abc import Callable

from keel.errors import StoreError, StoreNotFoundError, StoreVersionError
from keel.store import _postgres_rollups
from keel.store._postgres_pool import Conn, lock_key, quoted

__all__ = ["CHANGE_SHARDS", "MIGRATIONS", "SCHEMA_VERSION", "check_readable", "migrate", "version"]

CHANGE_SHARDS = 16
"""Rows of the change counter: concurrent writers bump different rows (by backend pid) rather than queue on one."""


def _counted(table: str) -> str:
    """The triggers that count every write to `table` in ``changes``.

    Deferred to the commit, so that a transaction takes its shard's row lock last, when it waits for nothing else:
    two writers can never deadlock over the counter, and the lock is held only while committing.
    """
    return (
        f"CREATE CONSTRAINT TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {{s}}.{table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {{s}}.count_change();"
        f"CREATE TRIGGER {table}_truncated AFTER TRUNCATE ON {{s}}.{table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {{s}}.count_change();"
    )


MIGRATIONS: tuple[str, ...] = (
    # 1: runs and their append-only journals; the change counter and the trigger functions.
    """
    CREATE TABLE {s}.changes (
        shard INTEGER PRIMARY KEY,
        n     BIGINT NOT NULL
    );
    INSERT INTO {s}.changes (shard, n) SELECT g, 0 FROM generate_series(0, """
    + str(CHANGE_SHARDS - 1)
    + """) AS g;
    CREATE FUNCTION {s}.count_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Once per transaction (the setting is local to it), however many rows it writes.
        IF current_setting('keel.changed', true) IS DISTINCT FROM TG_TABLE_SCHEMA THEN
            PERFORM set_config('keel.changed', TG_TABLE_SCHEMA, true);
            UPDATE {s}.changes SET n = n + 1 WHERE shard = pg_backend_pid() % """
    + str(CHANGE_SHARDS)
    + """;
        END IF;
        RETURN NULL;
    END
    $$;
    CREATE FUNCTION {s}.refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%', TG_ARGV[0];
    END
    $$;
    CREATE TABLE {s}.runs (
        run_id        TEXT PRIMARY KEY,
        agent         TEXT NOT NULL,
        session_id    TEXT,
        task          TEXT NOT NULL,
        model         TEXT NOT NULL,
        status        TEXT NOT NULL,
        started_at    DOUBLE PRECISION NOT NULL,
        finished_at   DOUBLE PRECISION,
        steps         BIGINT NOT NULL DEFAULT 0,
        input_tokens  BIGINT NOT NULL DEFAULT 0,
        output_tokens BIGINT NOT NULL DEFAULT 0,
        cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
        output        TEXT,
        report        TEXT,
        reason        TEXT
    );
    CREATE INDEX runs_by_start ON {s}.runs (started_at DESC);
    CREATE INDEX runs_by_session ON {s}.runs (session_id, started_at DESC);
    CREATE INDEX runs_by_agent ON {s}.runs (agent, started_at DESC);
    CREATE TABLE {s}.events (
        run_id     TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        kind       TEXT NOT NULL,
        phase      TEXT NOT NULL,
        payload    TEXT NOT NULL,
        tokens_in  BIGINT NOT NULL DEFAULT 0,
        tokens_out BIGINT NOT NULL DEFAULT 0,
        cost_usd   DOUBLE PRECISION NOT NULL DEFAULT 0,
        latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        ts         DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX events_by_kind ON {s}.events (kind, ts);
    CREATE TRIGGER events_are_append_only BEFORE UPDATE ON {s}.events
        FOR EACH ROW EXECUTE FUNCTION {s}.refuse_update('the journal is append-only');
    """
    + _counted("runs")
    + _counted("events"),
    # 2: the spend ledger of hard spending limits (G2). One row per (entry, ledger key); a live reservation has
    # an expiry, settled spend has none. Money in integer nano-dollars, so sums compare exactly with ceilings.
    """
    CREATE TABLE {s}.spend (
        entry_id   TEXT NOT NULL,
        key        TEXT NOT NULL,
        run_id     TEXT NOT NULL,
        ts         DOUBLE PRECISION NOT NULL,
        nano_usd   BIGINT NOT NULL,
        tokens     BIGINT NOT NULL,
        expires_at DOUBLE PRECISION,
        PRIMARY KEY (entry_id, key)
    );
    CREATE INDEX spend_by_key ON {s}.spend (key, ts);
    """
    + _counted("spend"),
    # 3: the human review queue (G4). An item is decided once: deciding is a conditional UPDATE of a pending
    # row, and the trigger refuses any change to a decided one, whatever the code does.
    """
    CREATE TABLE {s}.reviews (
        id          TEXT PRIMARY KEY,
        run_id      TEXT NOT NULL,
        agent       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        action      TEXT NOT NULL,
        arguments   TEXT NOT NULL,
        priority    BIGINT NOT NULL DEFAULT 0,
        created_at  DOUBLE PRECISION NOT NULL,
        status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied')),
        decided_at  DOUBLE PRECISION,
        decided_by  TEXT,
        note        TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX reviews_by_status ON {s}.reviews (status, priority DESC, created_at);
    CREATE INDEX reviews_by_run ON {s}.reviews (run_id, created_at);
    CREATE TRIGGER reviews_are_decided_once BEFORE UPDATE ON {s}.reviews FOR EACH ROW WHEN (OLD.status <> 'pending')
        EXECUTE FUNCTION {s}.refuse_update('a decided review item is final');
    """
    + _counted("reviews"),
    # 4: rollups (keel.store.rollups), written with the events they count; a store migrated from version 3
    # counts the events it already has. No change trigger: a rollup only moves with an event, which is counted.
    """
    CREATE TABLE {s}.rollups (
        span       INTEGER NOT NULL,
        metric     TEXT NOT NULL,
        bucket     BIGINT NOT NULL,
        agent      TEXT NOT NULL,
        label1     TEXT NOT NULL,
        label2     TEXT NOT NULL,
        n          BIGINT NOT NULL,
        tokens_in  BIGINT NOT NULL,
        tokens_out BIGINT NOT NULL,
        cost_usd   DOUBLE PRECISION NOT NULL,
        value      DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (span, metric, bucket, agent, label1, label2)
    );
    CREATE INDEX runs_by_status ON {s}.runs (status, started_at DESC);
    """,
    # 5: the embedded cache (C2): model responses, tool results and plans under a hashed key, until expires_at.
    """
    CREATE TABLE {s}.cache (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        expires_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX cache_by_expiry ON {s}.cache (expires_at);
    """
    + _counted("cache"),
)

SCHEMA_VERSION = len(MIGRATIONS)

# Work a migration does beyond its SQL: computing the rollups of the events a store already holds.
_AFTER_MIGRATION: dict[int, Callable[[Conn, str], None]] = {4: _postgres_rollups.backfill}


def version(conn: Conn, schema: str) -> int | None:
    """The store's schema version: None when the schema does not exist, 0 when it holds no Keel version table."""
    s = quoted(schema)
    found = conn.execute(
        "SELECT to_regnamespace(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL", (s, f"{s}.schema_version")
    ).fetchone()
    if found is None or not found[0]:
        return None
    if not found[1]:
        return 0
    row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {s}.schema_version").fetchone()
    return int(row[0]) if row is not None else 0


def _refuse_newer(current: int, where: str) -> None:
    if current > SCHEMA_VERSION:
        raise StoreVersionError(
            f"the store at {where} has schema version {current}, newer than this Keel understands "
            f"({SCHEMA_VERSION}); upgrade keel-agents"
        )


def migrate(conn: Conn, schema: str, where: str, *, upto: int = SCHEMA_VERSION) -> None:
    """Create the schema if needed and apply the migrations it lacks, up to version `upto`, in one transaction.

    `conn` is in autocommit mode. Up to date already: one read, no lock. `StoreVersionError` for a newer store.
    """
    current = version(conn, schema) or 0
    _refuse_newer(current, where)
    if current >= upto:
        return
    s = quoted(schema)
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '60s'")  # another process may be migrating: wait for it
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("keel", "migrate", schema),))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_version "
            "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = version(conn, schema) or 0  # read again under the lock: it may have migrated meanwhile
        _refuse_newer(current, where)
        for number in range(current + 1, upto + 1):
            conn.execute(MIGRATIONS[number - 1].format(s=s))
            if number in _AFTER_MIGRATION:
                _AFTER_MIGRATION[number](conn, s)
            conn.execute(
                f"INSERT INTO {s}.schema_version (version, applied_at) VALUES (%s, extract(epoch FROM now()))",
                (number,),
            )


def check_readable(conn: Conn, schema: str, where: str) -> None:
    """Refuse, writing nothing, a store that does not exist, is not Keel's, or is not of this version."""
    current = version(conn, schema)
    if current is None:
        raise StoreNotFoundError(
            f"no store at {where} yet: run an agent first, or point KEEL_STORE/--store at an existing store",
            path=where,
        )
    if current == 0:
        raise StoreError(f"{where} is not a Keel store (its schema has no Keel schema version)")
    _refuse_newer(current, where)
    if current < SCHEMA_VERSION:
        raise StoreError(
            f"the store at {where} has schema version {current}; run an agent on it with this Keel to migrate it "
            f"to version {SCHEMA_VERSION}"
        )
