"""Caches for cost management (C2): where cached responses, tool results and plans are kept, and under which key.

A `CacheBackend` maps string keys to string values, with an optional time to live. Three ship with Keel:

- `StoreCache` (the default): the run's own `Store`, so a cache needs no extra infrastructure and survives
  restarts (SQLite) or lives as long as the process (``memory://`` stores).
- `MemoryCache`: in-process and bounded (least recently used entries go first).
- `RedisCache`: shared by every process that points at the same Redis (extra ``keel-agents[redis]``).

A backend that fails raises `CacheError` and nothing else, after one attempt: the caller then goes on without
the cache; a cache must never make a run fail or hang. `cache_key` builds keys from arbitrary arguments, and
`PlanCache` keeps the plans of repeated tasks.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from keel.cost._cache_keys import cache_key
from keel.errors import CacheError, ConfigError, KeelError, MissingDependencyError
from keel.store.base import Store

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CacheBackend",
    "CachePolicy",
    "MemoryCache",
    "PlanCache",
    "RedisCache",
    "StoreCache",
    "cache_backend",
    "cache_key",
]

_INSTALL_HINT = "pip install 'keel-agents[redis]'"


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached values live: string keys to string values, each with an optional time to live.

    Every failure (connection refused, timeout, a store that cannot be written) is raised as `CacheError`,
    whose message names the backend, after a single attempt: callers degrade to no cache rather than wait.
    """

    name: str
    """The backend, for messages and the journal: ``"store"``, ``"memory"``, ``"redis://host:6379/0"``."""

    async def get(self, key: str) -> str | None:
        """The value under `key`, or None when there is none or it expired."""
        ...

    async def set(self, key: str, value: str, *, ttl_s: float | None) -> None:
        """Keep `value` under `key` for `ttl_s` seconds (None: until replaced or evicted).

        A `ttl_s` of zero or less keeps nothing, and drops what `key` held.
        """
        ...

    async def close(self) -> None:
        """Release connections; a backend can still be used afterwards (it reconnects)."""
        ...


def _lifetime(ttl_s: float | None) -> float | None:
    """How long to keep a value: None for ever, 0.0 not at all (ttl zero, negative or NaN), else `ttl_s`."""
    if ttl_s is None or ttl_s == math.inf:
        return None
    return float(ttl_s) if ttl_s > 0 else 0.0


class MemoryCache:
    """An in-process cache of at most `max_entries` values; the least recently used go first when it is full.

    Expiry follows the monotonic clock, so it is immune to changes of the wall clock. Safe to share between
    threads (each ``run_sync`` runs in its own event loop). `close` keeps the entries: the cache outlives runs.

    Args:
        max_entries: the bound, at least 1 (`ConfigError` otherwise).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"MemoryCache max_entries must be a whole number of at least 1, got {max_entries!r}")
        self.name = "memory"
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many entries are held, expired ones not yet dropped included."""
        return len(self._entries)

    async def get(self, key: str) -> str | None:
        """The value under `key` unless it expired; a hit makes it the most recently used."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[1] is not None and found[1] <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return found[0]

    async def set(self, key: str, value: str, *, ttl_s: float | None) -> None:
        """Keep `value` for `ttl_s` seconds, evicting the least recently used entries beyond the bound."""
        lifetime = _lifetime(ttl_s)
        with self._lock:
            if lifetime == 0.0:
                self._entries.pop(key, None)
                return
            self._entries[key] = (value, None if lifetime is None else time.monotonic() + lifetime)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def close(self) -> None:
        """Nothing to release; the entries stay."""


class StoreCache:
    """A cache in a Keel `Store` (its ``cache`` table): shared by every process using the store.

    Expiry is by the wall clock (`time.time`), since entries outlive processes. The store belongs to the
    caller: `close` leaves it open.
    """

    def __init__(self, store: Store) -> None:
        self.name = "store"
        self.store = store

    async def get(self, key: str) -> str | None:
        """The value under `key` unless it expired."""
        try:
            return await self.store.cache_get(key, now=time.time())
        except (KeelError, OSError) as exc:
            raise CacheError(f"cache backend store ({self.store.url}) could not be read: {exc}") from exc

    async def set(self, key: str, value: str, *, ttl_s: float | None) -> None:
        """Write `value` until ``now + ttl_s`` (None: until replaced)."""
        now = time.time()
        lifetime = _lifetime(ttl_s)
        try:
            await self.store.cache_put(key, value, expires_at=None if lifetime is None else now + lifetime, now=now)
        except (KeelError, OSError) as exc:
            raise CacheError(f"cache backend store ({self.store.url}) could not be written: {exc}") from exc

    async def close(self) -> None:
        """Nothing to release: the store is the caller's to close."""


def _redacted(url: str) -> str:
    """`url` with its password replaced by ``***``, fit for messages and the journal."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class RedisCache:
    """A cache in Redis, shared by every process pointed at it; values expire on the server (``SET … PX``).

    Every call is one attempt bounded by `timeout_s` (to connect, and to each read of a reply): a Redis that is
    down or slow costs a run at most that, then a `CacheError`. Connections belong to the event loop that
    opened them; each loop gets its own client, and `close` should be awaited before a loop ends (an agent
    does so at the end of a run).

    Args:
        url: ``redis://[[user]:[password]@]host[:port][/db]`` or ``rediss://…`` (TLS).
        prefix: put before every key, so that Keel's keys are easy to find and never collide with others.
        timeout_s: the connect and socket timeout, in seconds (above zero).

    Raises:
        MissingDependencyError: the ``redis`` package is not installed.
        ConfigError: `url` or `timeout_s` is malformed.
    """

    def __init__(self, url: str, *, prefix: str = "keel:cache:", timeout_s: float = 0.5) -> None:
        try:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:
            raise MissingDependencyError(
                f"RedisCache needs the redis package, which is not installed; install Keel's redis extra: "
                f"{_INSTALL_HINT}"
            ) from exc
        if not (isinstance(timeout_s, int | float) and timeout_s > 0 and math.isfinite(timeout_s)):
            raise ConfigError(f"RedisCache timeout_s must be a number of seconds above zero, got {timeout_s!r}")
        self.name = _redacted(url)
        self.url = url
        self.prefix = prefix
        self.timeout_s = float(timeout_s)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
        self._connect: Callable[[], Redis] = lambda: redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
        try:
            self._spare: Redis | None = self._connect()  # connects lazily; built now to check the URL
        except ValueError as exc:
            raise ConfigError(f"RedisCache cannot use the URL {self.name}: {exc}") from exc
        self._clients: dict[asyncio.AbstractEventLoop, Redis] = {}
        self._lock = threading.Lock()

    def _client(self) -> Redis:
        """The client of the running event loop, created on its first use there."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                for gone in [old for old in self._clients if old.is_closed()]:
                    del self._clients[gone]
                client, self._spare = self._spare or self._connect(), None
                self._clients[loop] = client
            return client

    def _failed(self, doing: str, exc: BaseException) -> CacheError:
        """The `CacheError` for a failed call: the backend, what it was doing, and why."""
        why = str(exc) or "timed out"
        return CacheError(f"cache backend {self.name} failed to {doing}: {type(exc).__name__}: {why}")

    async def get(self, key: str) -> str | None:
        """The value under ``prefix + key``; None when there is none (or it is not UTF-8, which Keel never writes)."""
        try:
            raw = await self._client().get(self.prefix + key)
        except self._errors as exc:
            raise self._failed(f"read {key!r}", exc) from exc
        if raw is None:
            return None
        try:
            return raw.decode() if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            return None

    async def set(self, key: str, value: str, *, ttl_s: float | None) -> None:
        """``SET prefix+key value PX ttl_ms`` (no expiry when `ttl_s` is None; ``DEL`` when it is zero or less)."""
        lifetime = _lifetime(ttl_s)
        client = self._client()
        try:
            if lifetime == 0.0:
                await client.delete(self.prefix + key)
            elif lifetime is None:
                await client.set(self.prefix + key, value)
            else:
                await client.set(self.prefix + key, value, px=max(1, math.ceil(lifetime * 1000)))
        except self._errors as exc:
            raise self._failed(f"write {key!r}", exc) from exc

    async def close(self) -> None:
        """Close the running loop's connections; a later call opens new ones."""
        with self._lock:
            client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is None:
            return
        try:
            await client.aclose()
        except self._errors as exc:
            raise self._failed("close", exc) from exc


def cache_backend(spec: CacheBackend | str | None, store: Store) -> CacheBackend:
    """The cache backend `spec` names, for an agent whose store is `store`.

    None is the store itself (`StoreCache`), ``"memory://"`` an in-process `MemoryCache`, a ``redis://`` or
    ``rediss://`` URL a `RedisCache`; an object with the `CacheBackend` methods is used as it is.

    Raises:
        ConfigError: anything else (the message says what is accepted).
    """
    if spec is None:
        return StoreCache(store)
    if isinstance(spec, str):
        if spec == "memory://":
            return MemoryCache()
        if spec.startswith(("redis://", "rediss://")):
            return RedisCache(spec)
    elif isinstance(spec, CacheBackend):
        return spec
    raise ConfigError(
        "a cache must be None (the run's store), 'memory://', a 'redis://' or 'rediss://' URL, or an object with "
        f"the CacheBackend methods (name, get, set, close); got {spec!r}"
    )


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What an agent caches, and where (``Agent(cache=CachePolicy(...))``; ``cache=None`` turns caching off).

    Args:
        backend: where entries live: None for the agent's store, ``"memory://"``, a ``"redis://…"`` URL, or a
            `CacheBackend`.
        responses: reuse a model's response to the same request (model, instructions, messages, tools, output
            schema, output limit): ``"deterministic"`` only for models that answer the same request the same way
            (temperature 0), True for every model (you accept a repeated answer), False never.
        response_ttl_s: how long a response is reused; None until replaced.
        tools: reuse tool results for tools that declare ``cache_ttl``.
    """

    backend: CacheBackend | str | None = None
    responses: bool | Literal["deterministic"] = "deterministic"
    response_ttl_s: float | None = 86400.0
    tools: bool = True

    def __post_init__(self) -> None:
        if self.responses not in (True, False, "deterministic"):
            raise ConfigError(f"CachePolicy.responses must be True, False or 'deterministic', got {self.responses!r}")
        if self.response_ttl_s is not None and not self.response_ttl_s > 0:
            raise ConfigError(f"CachePolicy.response_ttl_s must be positive or None, got {self.response_ttl_s!r}")


class PlanCache:
    """The plans of repeated tasks: the steps a planner chose for a task, per agent, reused for the same task.

    Tasks are compared after collapsing whitespace and lower-casing (``"Book  a Flight"`` is ``"book a flight"``).
    A value that is not a JSON list of strings (corrupt, or written by something else) reads as a miss.
    `CacheError` from the backend propagates: the caller decides to plan afresh.

    Args:
        backend: where plans are kept.
        ttl_s: how long a plan is reused, in seconds (None: until replaced); a week by default.
    """

    def __init__(self, backend: CacheBackend, *, ttl_s: float | None = 7 * 86400) -> None:
        self.backend = backend
        self.ttl_s = ttl_s

    @staticmethod
    def key(agent: str, task: str) -> str:
        """The cache key of `agent`'s plan for `task` (whitespace- and case-normalized)."""
        return cache_key("plan", agent, " ".join(task.split()).lower())

    async def get(self, agent: str, task: str) -> list[str] | None:
        """The cached steps for `task`, or None."""
        raw = await self.backend.get(self.key(agent, task))
        if raw is None:
            return None
        try:
            steps = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
            return None
        return steps

    async def put(self, agent: str, task: str, steps: Sequence[str]) -> None:
        """Cache `steps` as the plan for `task`.

        Raises:
            ConfigError: `steps` is a single string rather than a sequence of strings.
        """
        if isinstance(steps, str):
            raise ConfigError("PlanCache.put needs the steps as a sequence of strings, not a single string")
        await self.backend.set(
            self.key(agent, task), json.dumps([str(step) for step in steps], ensure_ascii=False), ttl_s=self.ttl_s
        )
