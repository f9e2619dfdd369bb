"""Connections for the PostgreSQL store: the URL and its redaction, session settings, and the pool.

Every wait is bounded: connecting (`CONNECT_TIMEOUT_S`, unless the URL sets ``connect_timeout`` itself), waiting for
a connection from the pool (`POOL_TIMEOUT_S`), waiting for a lock (`LOCK_TIMEOUT`) and running one statement
(`STATEMENT_TIMEOUT`). A connection that sat idle in the pool long enough for a server restart or a firewall to
drop it is pinged before it is handed out (`IDLE_CHECK_S`); one used a moment ago is not, which saves a round trip
per call.

Secrets never reach a message: `redact` is the URL as Keel shows it, and `scrub` removes the password from any
text a driver error carries.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from keel.errors import ConfigError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "IDLE_CHECK_S",
    "LOCK_TIMEOUT",
    "POOL_TIMEOUT_S",
    "STATEMENT_TIMEOUT",
    "Conn",
    "Pool",
    "connect",
    "connect_kwargs",
    "lock_key",
    "open_pool",
    "quoted",
    "redact",
    "scrub",
    "secrets_of",
    "session_settings",
]

Conn: TypeAlias = psycopg.Connection[TupleRow]
Pool: TypeAlias = ConnectionPool[Conn]

CONNECT_TIMEOUT_S = 5
"""Seconds to reach the server before giving up (an unreachable server fails fast, not after the OS's minutes)."""
POOL_TIMEOUT_S = 30.0
"""Seconds a call waits for a free connection when every pooled one is busy."""
LOCK_TIMEOUT = "10s"
"""How long a statement waits for a lock (a spend key, a run being resumed, a review being decided)."""
STATEMENT_TIMEOUT = "60s"
"""How long one statement may run."""
IDLE_CHECK_S = 30.0
"""A pooled connection idle for longer than this is pinged before use (a dropped one is replaced)."""

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PASSWORD_PARAM = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)")


def quoted(schema: str) -> str:
    """`schema` as a quoted SQL identifier; `ConfigError` unless it is a plain name (letters, digits, ``_``)."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"a PostgreSQL store's schema must be a plain name (a letter or _, then letters, digits or _, at most "
            f"63), got {schema!r}"
        )
    return f'"{schema}"'


def redact(url: str) -> str:
    """`url` with any password replaced by ``***``, fit for messages.

    Found in the user part of a URL, in a ``password=`` query parameter, or in a ``key=value`` connection string.
    """
    if "://" not in url:
        return _PASSWORD_PARAM.sub(r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc, query=_PASSWORD_PARAM.sub(r"\1***", parts.query)))


def secrets_of(url: str) -> tuple[str, ...]:
    """The password `url` carries, in every spelling a message could repeat it (raw, decoded); empty when none."""
    found: set[str] = set()
    if "://" in url:
        userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
        if at and ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found |= {raw, unquote(raw)}
    try:
        found.add(str(conninfo_to_dict(url).get("password") or ""))
    except psycopg.Error:
        pass  # a malformed URL: `connect_kwargs` says so
    for match in _PASSWORD_PARAM.finditer(url):
        found |= {match.group(2), match.group(2).strip("'"), unquote(match.group(2))}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` on one line, with every secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())


def connect_kwargs(url: str, *, redacted: str) -> dict[str, Any]:
    """Keyword arguments for `psycopg.connect` beside `url`: autocommit, and a connect timeout unless the URL sets one.

    `ConfigError` when `url` is not a PostgreSQL URL or connection string.
    """
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ConfigError(
            f"the store URL {redacted} is not a valid PostgreSQL URL ({scrub(str(exc), secrets_of(url))}); use "
            "postgresql://user[:password]@host[:port]/database"
        ) from exc
    kwargs: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in given:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in given:
        kwargs["application_name"] = "keel"
    return kwargs


def session_settings(*, read_only: bool) -> str:
    """The ``SET`` statements every connection starts with (one round trip)."""
    settings = f"SET lock_timeout = '{LOCK_TIMEOUT}'; SET statement_timeout = '{STATEMENT_TIMEOUT}'"
    # A store opened without `create` never writes, as a read-only SQLite store cannot.
    return settings + ("; SET default_transaction_read_only = on" if read_only else "")


def connect(url: str, kwargs: dict[str, Any], *, read_only: bool) -> Conn:
    """One connection with the session settings (for preparing the store, before the pool exists)."""
    conn = psycopg.connect(url, **kwargs)
    try:
        conn.execute(session_settings(read_only=read_only))
    except BaseException:
        conn.close()
        raise
    return conn


class _Freshness:
    """Pings a connection before use only when it sat idle in the pool for more than `IDLE_CHECK_S`."""

    def __init__(self, settings: str) -> None:
        self._settings = settings
        self._returned: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # the pool calls these from its workers and from every caller's thread

    def configure(self, conn: Conn) -> None:
        """Apply the session settings to a new connection (which counts as fresh)."""
        conn.execute(self._settings)
        self.returned(conn)

    def check(self, conn: Conn) -> None:
        """Ping `conn` if it has been idle long; raising makes the pool drop it and hand out another."""
        with self._lock:
            since = self._returned.get(conn)
        if since is None or time.monotonic() - since > IDLE_CHECK_S:
            ConnectionPool.check_connection(conn)

    def returned(self, conn: Conn) -> None:
        """Note when `conn` went back to the pool."""
        with self._lock:
            self._returned[conn] = time.monotonic()


def open_pool(url: str, kwargs: dict[str, Any], *, read_only: bool, name: str, max_size: int) -> Pool:
    """A pool of up to `max_size` connections, opened (its first connection is made in the background)."""
    freshness = _Freshness(session_settings(read_only=read_only))
    reset: Callable[[Conn], None] = freshness.returned
    return ConnectionPool(
        url,
        kwargs=kwargs,
        min_size=1,
        max_size=max_size,
        open=True,
        configure=freshness.configure,
        check=freshness.check,
        reset=reset,
        name=name,
        timeout=POOL_TIMEOUT_S,
    )


def lock_key(*parts: str) -> int:
    """A stable 64-bit advisory-lock key for `parts` (the same in every process; a collision only serializes more)."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
