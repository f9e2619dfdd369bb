"""SQLite schema, versioned: migration N brings a store from version N-1 to N.

Later issues append to `MIGRATIONS`; never edit a released migration. The version lives in
``PRAGMA user_version``.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: tuple[str, ...] = (
    # 1: runs and their append-only journals.
    """
    CREATE TABLE runs (
        run_id        TEXT PRIMARY KEY,
        agent         TEXT NOT NULL,
        session_id    TEXT,
        task          TEXT NOT NULL,
        model         TEXT NOT NULL,
        status        TEXT NOT NULL,
        started_at    REAL NOT NULL,
        finished_at   REAL,
        steps         INTEGER NOT NULL DEFAULT 0,
        input_tokens  INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd      REAL NOT NULL DEFAULT 0,
        output        TEXT,
        report        TEXT,
        reason        TEXT
    );
    CREATE INDEX runs_by_start ON runs (started_at DESC);
    CREATE INDEX runs_by_session ON runs (session_id, started_at DESC);
    CREATE INDEX runs_by_agent ON runs (agent, started_at DESC);
    CREATE TABLE events (
        run_id     TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        phase      TEXT NOT NULL,
        payload    TEXT NOT NULL,
        tokens_in  INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd   REAL NOT NULL DEFAULT 0,
        latency_ms REAL NOT NULL DEFAULT 0,
        ts         REAL NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_kind ON events (kind, ts);
    CREATE TRIGGER events_are_append_only BEFORE UPDATE ON events
    BEGIN
        SELECT RAISE(ABORT, 'the journal is append-only');
    END;
    """,
    # 2: the spend ledger of hard spending limits (G2). One row per (entry, ledger key); a live reservation has
    # an expiry, settled spend has none. Money in integer nano-dollars, so sums compare exactly with ceilings.
    """
    CREATE TABLE spend (
        entry_id   TEXT NOT NULL,
        key        TEXT NOT NULL,
        run_id     TEXT NOT NULL,
        ts         REAL NOT NULL,
        nano_usd   INTEGER NOT NULL,
        tokens     INTEGER NOT NULL,
        expires_at REAL,
        PRIMARY KEY (entry_id, key)
    );
    CREATE INDEX spend_by_key ON spend (key, ts);
    """,
    # 3: the human review queue (G4). An item is decided once: deciding is a conditional UPDATE of a pending
    # row, and the trigger refuses any change to a decided one, whatever the code does.
    """
    CREATE TABLE reviews (
        id          TEXT PRIMARY KEY,
        run_id      TEXT NOT NULL,
        agent       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        action      TEXT NOT NULL,
        arguments   TEXT NOT NULL,
        priority    INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL,
        status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied')),
        decided_at  REAL,
        decided_by  TEXT,
        note        TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX reviews_by_status ON reviews (status, priority DESC, created_at);
    CREATE INDEX reviews_by_run ON reviews (run_id, created_at);
    CREATE TRIGGER reviews_are_decided_once BEFORE UPDATE ON reviews WHEN OLD.status != 'pending'
    BEGIN
        SELECT RAISE(ABORT, 'a decided review item is final');
    END;
    """,
    # 4: rollups, counters kept with the journal per minute, hour and day for dashboards and metrics
    # (keel.store.rollups); a store migrated from version 3 counts the events it already has. Runs by status.
    """
    CREATE TABLE rollups (
        span       INTEGER NOT NULL,
        metric     TEXT NOT NULL,
        bucket     INTEGER NOT NULL,
        agent      TEXT NOT NULL,
        label1     TEXT NOT NULL,
        label2     TEXT NOT NULL,
        n          INTEGER NOT NULL,
        tokens_in  INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL,
        cost_usd   REAL NOT NULL,
        value      REAL NOT NULL,
        PRIMARY KEY (span, metric, bucket, agent, label1, label2)
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_status ON runs (status, started_at DESC);
    """,
    # 5: the embedded cache (C2): model responses, tool results and plans under a hashed key, until expires_at.
    """
    CREATE TABLE cache (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        expires_at REAL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX cache_by_expiry ON cache (expires_at);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
