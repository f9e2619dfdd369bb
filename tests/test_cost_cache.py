import asyncio
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.cost.cache import (
    CacheBackend,
    MemoryCache,
    PlanCache,
    RedisCache,
    StoreCache,
    cache_backend,
    cache_key,
)
from keel.errors import CacheError, ConfigError, MissingDependencyError, StoreError
from keel.store import MemoryStore, SQLiteStore, Store

T0 = 1_700_000_000.0


class Clock:
    """A wall clock the test moves by hand (patched over `time.time`)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake


# --- MemoryCache ---------------------------------------------------------------------------------------------------


async def test_memory_cache_round_trip_and_miss():
    cache = MemoryCache()
    assert await cache.get("k") is None
    await cache.set("k", "v", ttl_s=None)
    assert await cache.get("k") == "v"
    await cache.set("k", "w", ttl_s=60)
    assert await cache.get("k") == "w"
    assert len(cache) == 1
    assert cache.name == "memory"
    assert isinstance(cache, CacheBackend)


async def test_memory_cache_entries_expire_after_their_ttl():
    cache = MemoryCache()
    await cache.set("short", "v", ttl_s=0.05)
    await cache.set("long", "v", ttl_s=60)
    await cache.set("forever", "v", ttl_s=None)
    assert await cache.get("short") == "v"
    await asyncio.sleep(0.1)
    assert await cache.get("short") is None
    assert await cache.get("long") == "v"
    assert await cache.get("forever") == "v"


async def test_memory_cache_zero_or_negative_ttl_keeps_nothing_and_drops_the_old_value():
    cache = MemoryCache()
    await cache.set("k", "old", ttl_s=None)
    await cache.set("k", "new", ttl_s=0)
    assert await cache.get("k") is None
    await cache.set("k", "new", ttl_s=-5)
    assert await cache.get("k") is None
    assert len(cache) == 0


async def test_memory_cache_evicts_the_least_recently_used_beyond_its_bound():
    cache = MemoryCache(max_entries=2)
    await cache.set("a", "1", ttl_s=None)
    await cache.set("b", "2", ttl_s=None)
    assert await cache.get("a") == "1"  # a is now more recent than b
    await cache.set("c", "3", ttl_s=None)
    assert len(cache) == 2
    assert await cache.get("b") is None
    assert await cache.get("a") == "1"
    assert await cache.get("c") == "3"
    await cache.set("c", "3bis", ttl_s=None)  # replacing does not grow the cache
    assert len(cache) == 2


async def test_memory_cache_close_keeps_entries():
    cache = MemoryCache()
    await cache.set("k", "v", ttl_s=None)
    await cache.close()
    assert await cache.get("k") == "v"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_memory_cache_rejects_a_bad_bound(bad):
    with pytest.raises(ConfigError, match="max_entries"):
        MemoryCache(max_entries=bad)


# --- StoreCache ----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def any_store(request: pytest.FixtureRequest, memory_store: MemoryStore, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield memory_store
    else:
        store = SQLiteStore(tmp_path / "cache.db")
        yield store
        store.close()


async def test_store_cache_round_trip_and_ttl(any_store: Store, clock: Clock):
    cache = StoreCache(any_store)
    assert cache.name == "store"
    assert await cache.get("k") is None
    await cache.set("k", "v", ttl_s=10)
    await cache.set("forever", "f", ttl_s=None)
    assert await cache.get("k") == "v"
    clock.now += 9.9
    assert await cache.get("k") == "v"
    clock.now += 0.2
    assert await cache.get("k") is None
    clock.now += 10 * 365 * 86400
    assert await cache.get("forever") == "f"


async def test_store_cache_zero_ttl_replaces_the_value_by_nothing(any_store: Store, clock: Clock):
    cache = StoreCache(any_store)
    await cache.set("k", "v", ttl_s=None)
    await cache.set("k", "gone", ttl_s=0)
    assert await cache.get("k") is None


async def test_store_cache_survives_reopening_the_store_file(tmp_path: Path):
    path = tmp_path / "reopen.db"
    first = SQLiteStore(path)
    await StoreCache(first).set("k", "héllo ✓", ttl_s=3600)
    first.close()
    second = SQLiteStore(path)
    try:
        assert await StoreCache(second).get("k") == "héllo ✓"
    finally:
        second.close()


async def test_store_cache_turns_store_failures_into_cache_errors(tmp_path: Path):
    store = SQLiteStore(tmp_path / "closed.db")
    store.close()  # any further use fails with StoreError
    cache = StoreCache(store)
    with pytest.raises(CacheError, match=r"cache backend store \(sqlite:.*closed\.db\) could not be read") as read:
        await cache.get("k")
    assert isinstance(read.value.__cause__, StoreError)
    with pytest.raises(CacheError, match="could not be written"):
        await cache.set("k", "v", ttl_s=None)


# --- RedisCache ----------------------------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("KEEL_TEST_REDIS_URL")
    if not url:
        pytest.skip("KEEL_TEST_REDIS_URL is not set: no Redis server to test against (CI sets it)")
    return url


async def _drop_keys(url: str, prefix: str) -> None:
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in raw.scan_iter(match=prefix + "*")]
        if keys:
            await raw.delete(*keys)
    finally:
        await raw.aclose()


@pytest.fixture
async def redis_cache(redis_url: str) -> AsyncIterator[RedisCache]:
    prefix = f"keel:test:{uuid.uuid4().hex}:"
    cache = RedisCache(redis_url, prefix=prefix)
    yield cache
    await cache.close()
    await _drop_keys(redis_url, prefix)


async def test_redis_cache_round_trip_with_prefixed_keys(redis_cache: RedisCache, redis_url: str):
    import redis.asyncio

    assert isinstance(redis_cache, CacheBackend)
    assert await redis_cache.get("k") is None
    await redis_cache.set("k", "héllo ✓", ttl_s=None)
    assert await redis_cache.get("k") == "héllo ✓"
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await raw.get(redis_cache.prefix + "k") == "héllo ✓".encode()
        assert await raw.pttl(redis_cache.prefix + "k") == -1  # no expiry
        await redis_cache.set("k", "v", ttl_s=30)
        assert 0 < await raw.pttl(redis_cache.prefix + "k") <= 30_000
    finally:
        await raw.aclose()


async def test_redis_cache_entries_expire_after_their_ttl(redis_cache: RedisCache):
    await redis_cache.set("short", "v", ttl_s=0.1)
    await redis_cache.set("long", "v", ttl_s=60)
    assert await redis_cache.get("short") == "v"
    await asyncio.sleep(0.2)
    assert await redis_cache.get("short") is None
    assert await redis_cache.get("long") == "v"
    await redis_cache.set("long", "v", ttl_s=0)
    assert await redis_cache.get("long") is None


def test_redis_cache_works_from_one_event_loop_after_another(redis_url: str):
    prefix = f"keel:test:{uuid.uuid4().hex}:"
    cache = RedisCache(redis_url, prefix=prefix)

    async def use(value: str) -> str | None:
        await cache.set("k", value, ttl_s=60)
        try:
            return await cache.get("k")
        finally:
            await cache.close()

    assert asyncio.run(use("first")) == "first"
    assert asyncio.run(use("second")) == "second"  # as with two run_sync calls
    asyncio.run(_drop_keys(redis_url, prefix))


async def test_redis_cache_on_a_closed_port_fails_fast_with_a_cache_error():
    cache = RedisCache("redis://127.0.0.1:1/0")
    started = time.perf_counter()
    with pytest.raises(CacheError, match=r"cache backend redis://127\.0\.0\.1:1/0 failed to read 'k'"):
        await cache.get("k")
    with pytest.raises(CacheError, match="failed to write 'k'"):
        await cache.set("k", "v", ttl_s=10)
    assert time.perf_counter() - started < 2
    await cache.close()


async def test_redis_cache_times_out_on_a_server_that_never_answers():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # read what is sent, answer nothing, until the client goes away
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    started = time.perf_counter()
    try:
        with pytest.raises(CacheError, match="failed to read"):
            await cache.get("k")
        assert time.perf_counter() - started < 2
    finally:
        await cache.close()
        server.close()
        await server.wait_closed()


def test_redis_cache_name_hides_the_password():
    assert RedisCache("redis://user:s3cret@127.0.0.1:6379/0").name == "redis://user:***@127.0.0.1:6379/0"
    assert RedisCache("rediss://:s3cret@example.com/2").name == "rediss://:***@example.com/2"
    assert RedisCache("redis://127.0.0.1:6379/0").name == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_redis_cache_rejects_a_bad_timeout(bad):
    with pytest.raises(ConfigError, match="timeout_s"):
        RedisCache("redis://127.0.0.1:6379/0", timeout_s=bad)


def test_redis_cache_rejects_a_malformed_url():
    with pytest.raises(ConfigError, match="cannot use the URL"):
        RedisCache("redis://127.0.0.1:6379/0?socket_timeout=soon")


def test_redis_cache_without_the_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'keel-agents\[redis\]'"):
        RedisCache("redis://127.0.0.1:6379/0")


# --- cache_backend -------------------------------------------------------------------------------------------------


def test_cache_backend_picks_the_backend_a_spec_names(memory_store: MemoryStore):
    default = cache_backend(None, memory_store)
    assert isinstance(default, StoreCache) and default.store is memory_store
    assert isinstance(cache_backend("memory://", memory_store), MemoryCache)
    redis_backend = cache_backend("redis://127.0.0.1:6379/3", memory_store)
    assert isinstance(redis_backend, RedisCache) and redis_backend.name == "redis://127.0.0.1:6379/3"
    assert isinstance(cache_backend("rediss://example.com:6380/0", memory_store), RedisCache)
    mine = MemoryCache(max_entries=5)
    assert cache_backend(mine, memory_store) is mine


def test_cache_backend_accepts_any_object_with_the_protocol(memory_store: MemoryStore):
    class Custom:
        name = "custom"

        async def get(self, key: str) -> str | None:
            return None

        async def set(self, key: str, value: str, *, ttl_s: float | None) -> None:
            return None

        async def close(self) -> None:
            return None

    custom = Custom()
    assert cache_backend(custom, memory_store) is custom


@pytest.mark.parametrize("bad", ["", "memory", "postgres://db/keel", "unix:///tmp/redis.sock", 42, object()])
def test_cache_backend_rejects_anything_else_saying_what_is_accepted(bad, memory_store: MemoryStore):
    with pytest.raises(ConfigError, match=r"'memory://', a 'redis://' or 'rediss://' URL"):
        cache_backend(bad, memory_store)


# --- cache_key -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: list[int]


class Message(BaseModel):
    role: str
    content: str


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Opaque({self.value})"


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_cache_key_is_the_kind_and_a_sha256():
    key = cache_key("model", "gpt-4o", [{"role": "user", "content": "hi"}])
    kind, _, digest = key.partition(":")
    assert kind == "model" and len(digest) == 64 and int(digest, 16) >= 0
    assert key == cache_key("model", "gpt-4o", [{"role": "user", "content": "hi"}])
    assert key != cache_key("tool", "gpt-4o", [{"role": "user", "content": "hi"}])
    assert key != cache_key("model", "gpt-4o", [{"role": "user", "content": "hi!"}])
    # Pinned: keys must not change between versions or processes, or every cache goes cold.
    assert cache_key("k", "a", 1) == "k:" + __import__("hashlib").sha256(b'["a",1]').hexdigest()


def test_cache_key_ignores_dict_order_and_set_order():
    assert cache_key("k", {"a": 1, "b": {"c": 2, "d": 3}}) == cache_key("k", {"b": {"d": 3, "c": 2}, "a": 1})
    assert cache_key("k", {"x", "y", "z"}) == cache_key("k", {"z", "y", "x"}) == cache_key("k", frozenset("zyx"))
    assert cache_key("k", {1, "1", 2.5, None}) == cache_key("k", {None, 2.5, "1", 1})
    assert cache_key("k", {"x"}) != cache_key("k", {"y"})


def test_cache_key_keeps_types_apart():
    assert len({cache_key("k", 1), cache_key("k", 1.0), cache_key("k", "1"), cache_key("k", True)}) == 4


def test_cache_key_accepts_dicts_with_keys_that_are_not_strings():
    odd = {1: "a", (1, 2): "b", None: "c", frozenset({3}): "d"}
    assert cache_key("k", odd) == cache_key("k", dict(reversed(odd.items())))
    assert cache_key("k", {1: "a"}) == cache_key("k", {"1": "a"})  # str(key)
    # A string key and another key with the same str() keep both values, whatever the order.
    both = cache_key("k", {1: "a", "1": "b"})
    assert both == cache_key("k", {"1": "b", 1: "a"})
    assert both != cache_key("k", {1: "b", "1": "a"})


def test_cache_key_of_bytes_models_and_dataclasses():
    assert cache_key("k", b"\x00\xff") == cache_key("k", "00ff")
    assert cache_key("k", Message(role="user", content="hi")) == cache_key("k", {"role": "user", "content": "hi"})
    assert cache_key("k", Point(1, [2])) == cache_key("k", {"x": 1, "y": [2]})
    assert cache_key("k", Point(1, [2])) != cache_key("k", Point(1, [3]))


def test_cache_key_of_objects_with_no_json_form_uses_their_type_and_repr():
    assert cache_key("k", Opaque(1)) == cache_key("k", Opaque(1))
    assert cache_key("k", Opaque(1)) != cache_key("k", Opaque(2))
    assert cache_key("k", Opaque(1)) == cache_key("k", f"{Opaque.__qualname__}:Opaque(1)")


def test_cache_key_never_raises_and_gives_a_miss_when_there_is_no_stable_form():
    cyclic: list[object] = []
    cyclic.append(cyclic)
    deep: list[object] = []
    for _ in range(50_000):
        deep = [deep]
    for odd in (Unprintable(), cyclic, deep, {"a": Unprintable()}):
        first, second = cache_key("k", odd), cache_key("k", odd)
        assert first.startswith("k:") and first != second  # a fresh key: never a wrong hit


def test_cache_key_hashes_megabytes_quickly():
    big = "x" * 5_000_000
    started = time.perf_counter()
    key = cache_key("k", big, {"payload": big})
    assert time.perf_counter() - started < 2
    assert key == cache_key("k", big, {"payload": big})
    assert key != cache_key("k", big[:-1] + "y", {"payload": big})
    assert cache_key("k", "\ud800") == cache_key("k", "\ud800")  # a lone surrogate still hashes


# --- PlanCache -----------------------------------------------------------------------------------------------------


async def test_plan_cache_hit_and_miss():
    plans = PlanCache(MemoryCache())
    assert await plans.get("travel", "book a flight") is None
    await plans.put("travel", "book a flight", ["search flights", "pick one", "pay"])
    assert await plans.get("travel", "book a flight") == ["search flights", "pick one", "pay"]
    assert await plans.get("other-agent", "book a flight") is None
    assert await plans.get("travel", "book a hotel") is None


async def test_plan_cache_normalizes_whitespace_and_case_of_the_task():
    plans = PlanCache(MemoryCache())
    await plans.put("travel", "  Book a\tFLIGHT\n to Oslo ", ["search"])
    assert await plans.get("travel", "book a flight to oslo") == ["search"]
    assert PlanCache.key("travel", "Book  a flight") == cache_key("plan", "travel", "book a flight")


@pytest.mark.parametrize("corrupt", ["not json", '{"steps": ["a"]}', '["a", 2]', '"a"', "null", ""])
async def test_plan_cache_reads_a_corrupt_value_as_a_miss(corrupt: str):
    backend = MemoryCache()
    plans = PlanCache(backend)
    await backend.set(PlanCache.key("travel", "book a flight"), corrupt, ttl_s=None)
    assert await plans.get("travel", "book a flight") is None


async def test_plan_cache_stores_json_with_its_ttl(any_store: Store, clock: Clock):
    backend = StoreCache(any_store)
    plans = PlanCache(backend, ttl_s=60)
    await plans.put("travel", "book", ("a", "b"))
    assert json.loads(await backend.get(PlanCache.key("travel", "book")) or "") == ["a", "b"]
    clock.now += 61
    assert await plans.get("travel", "book") is None


async def test_plan_cache_rejects_a_single_string_as_steps():
    with pytest.raises(ConfigError, match="sequence of strings"):
        await PlanCache(MemoryCache()).put("travel", "book", "search and pay")


async def test_plan_cache_lets_backend_failures_through():
    plans = PlanCache(RedisCache("redis://127.0.0.1:1/0"))
    with pytest.raises(CacheError):
        await plans.get("travel", "book")
    with pytest.raises(CacheError):
        await plans.put("travel", "book", ["a"])
    await plans.backend.close()
