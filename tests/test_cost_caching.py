"""Caching in runs (C2): model responses and tool results reused, hits journaled with their saving, a cache that
fails never fails a run."""

import os
import uuid

import pytest

from keel import Agent, tool
from keel.cost.cache import CachePolicy, MemoryCache
from keel.errors import ToolDefinitionError
from keel.journal import EventKind
from keel.observe.tools import tool_calls
from keel.store import MemoryStore, SQLiteStore
from keel.testing import ScriptedModel, call, reply

PRICE = (2.50, 10.00)
lookups: list[str] = []


@tool(cache_ttl=300)
def get_order(order_id: str) -> str:
    """Look up an order (read-only: cacheable for five minutes)."""
    lookups.append(order_id)
    return f"{order_id}: shipped"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    lookups.clear()


def kinds(result) -> list[str]:
    return [e.kind.value for e in result.events]


async def test_a_repeated_tool_call_is_answered_from_the_cache_with_its_hit_journaled(
    sqlite_store: SQLiteStore,
) -> None:
    def agent() -> Agent:
        model = ScriptedModel([call("get_order", order_id="A1"), reply("shipped")])
        return Agent("a", model, tools=[get_order], store=sqlite_store)

    first, second = await agent().run("A1?"), await agent().run("A1 again?")
    assert lookups == ["A1"]  # the second run's lookup came from the cache
    hit = next(e for e in second.events if e.kind is EventKind.CACHE_HIT)
    assert hit.payload["tool"] == "get_order" and hit.payload["result"] == "A1: shipped"
    assert "tool_called" not in kinds(second) and second.output == "shipped"
    cached = [r for r in await tool_calls(sqlite_store) if r.cache_hit]
    assert [(r.run_id, r.tool) for r in cached] == [(second.run_id, "get_order")]
    assert first.report.done == second.report.done  # the report reads the same


async def test_a_model_response_is_reused_only_when_opted_in_and_saves_its_cost() -> None:
    store = MemoryStore()

    def agent(policy: CachePolicy) -> Agent:
        model = ScriptedModel([reply("hello")], usage=(1000, 50), price=PRICE)
        return Agent("a", model, store=store, cache=policy)

    await agent(CachePolicy()).run("Say hello")  # a scripted model is not deterministic: not cached by default
    again = await agent(CachePolicy()).run("Say hello")
    assert "cache_hit" not in kinds(again)

    opted = CachePolicy(responses=True)
    await agent(opted).run("Say hello")
    hit = await agent(opted).run("Say hello")
    (saved,) = [e for e in hit.events if e.kind is EventKind.CACHE_HIT]
    assert saved.payload["saved_tokens"] == 1050 and saved.payload["saved_cost_usd"] == pytest.approx(0.003)
    assert hit.usage.cost_usd == 0 and hit.output == "hello"
    turn = next(e for e in hit.events if e.kind is EventKind.MODEL_CALLED)
    assert turn.payload["cached"] is True and turn.cost_usd == 0
    other = await agent(opted).run("Say goodbye")  # another request: a miss
    assert "cache_hit" not in kinds(other)


async def test_side_effecting_tools_are_never_cached_unless_idempotent() -> None:
    with pytest.raises(ToolDefinitionError, match="cannot be cached"):

        @tool(side_effects=True, cache_ttl=60)
        def send_email(to: str) -> str:
            """Send an email."""
            return "sent"

    @tool(side_effects=True, idempotent=True, cache_ttl=60)
    def upsert_contact(email: str) -> str:
        """Create or update a contact."""
        return "ok"

    assert upsert_contact.cache_ttl == 60.0

    def ping() -> str:
        """Ping."""
        return "pong"

    with pytest.raises(ToolDefinitionError, match="positive number of seconds"):
        tool(cache_ttl=0)(ping)


class BrokenCache(MemoryCache):
    name = "broken"

    async def get(self, key: str) -> str | None:
        from keel.errors import CacheError

        raise CacheError("connection refused")


async def test_a_cache_that_fails_degrades_to_no_cache_with_one_warning_event() -> None:
    model = ScriptedModel([call("get_order", order_id="A1"), call("get_order", order_id="A1"), reply("done")])
    agent = Agent("a", model, tools=[get_order], store=MemoryStore(), cache=CachePolicy(backend=BrokenCache()))
    result = await agent.run("A1 twice")
    assert result.status.value == "completed" and lookups == ["A1", "A1"]
    warnings = [e.payload for e in result.events if e.kind is EventKind.FALLBACK_USED]
    assert len(warnings) == 1 and warnings[0]["cache"] is True and "connection refused" in warnings[0]["reason"]


async def test_caching_can_be_turned_off() -> None:
    model = ScriptedModel([call("get_order", order_id="A1"), call("get_order", order_id="A1"), reply("done")])
    await Agent("a", model, tools=[get_order], store=MemoryStore(), cache=None).run("A1 twice")
    assert lookups == ["A1", "A1"]


async def test_huge_and_odd_arguments_are_keyed_without_failing() -> None:
    @tool(cache_ttl=60)
    def summarize(text: str, tags: list[str]) -> str:
        """Summarize a text."""
        lookups.append("ran")
        return text[:10]

    big = "x" * 2_000_000
    store = MemoryStore()
    for _ in range(2):
        model = ScriptedModel([call("summarize", text=big, tags=["b", "a"]), reply("ok")])
        await Agent("a", model, tools=[summarize], store=store).run("summarize")
    assert lookups == ["ran"]


@pytest.mark.skipif(not os.environ.get("KEEL_TEST_REDIS_URL"), reason="KEEL_TEST_REDIS_URL is not set (CI sets it)")
async def test_redis_shares_the_cache_between_agents_and_a_dead_redis_degrades() -> None:
    url = os.environ["KEEL_TEST_REDIS_URL"]
    order = f"R-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        model = ScriptedModel([call("get_order", order_id=order), reply("ok")])
        shared = Agent("a", model, tools=[get_order], store=MemoryStore(), cache=CachePolicy(backend=url))
        await shared.run("go")
        await shared.aclose()
    assert lookups == [order]
    model = ScriptedModel([call("get_order", order_id=order), reply("ok")])
    dead = Agent("a", model, tools=[get_order], store=MemoryStore(), cache=CachePolicy(backend="redis://127.0.0.1:1/0"))
    result = await dead.run("go")
    await dead.aclose()
    assert result.status.value == "completed" and lookups == [order, order]
    assert any(e.payload.get("cache") for e in result.events if e.kind is EventKind.FALLBACK_USED)


@tool(cache_ttl=300)
def fetch_page(url: str) -> str:
    """Fetch a web page (untrusted content)."""
    return "Shipping rates page"


@tool(severity="high", side_effects=True)
def wire(amount: float) -> str:
    """Wire money."""
    return "wired"


async def test_a_cached_untrusted_result_taints_the_run_like_a_fresh_one(memory_store: MemoryStore) -> None:
    def run_once() -> Agent:
        model = ScriptedModel([call("fetch_page", url="https://example.com"), call("wire", amount=10), reply("ok")])
        return Agent("a", model, tools=[fetch_page, wire], store=memory_store)

    first, second = await run_once().run("pay"), await run_once().run("pay")
    assert "cache_hit" in kinds(second)
    assert first.status.value == second.status.value == "escalated"  # the wire waits for a person both times


async def test_another_agents_tool_of_the_same_name_is_another_cache_entry(memory_store: MemoryStore) -> None:
    def lookup_for(secret: str):
        @tool(cache_ttl=300, name="lookup")
        def lookup(key: str) -> str:
            """Look a key up."""
            return secret

        return lookup

    hr = Agent("hr", ScriptedModel([call("lookup", key="bob"), reply("done")]), tools=[lookup_for("salary 200k")],
               store=memory_store)  # fmt: skip
    public = Agent("public", ScriptedModel([call("lookup", key="bob"), reply("done")]),
                   tools=[lookup_for("bob is in Lisbon")], store=memory_store)  # fmt: skip
    await hr.run("bob?")
    result = await public.run("bob?")
    assert "cache_hit" not in kinds(result) and result.report.done == ('lookup({"key": "bob"}) -> ok',)
    assert "salary" not in str([e.payload for e in result.events])


def test_a_tool_that_reads_its_context_cannot_be_cached() -> None:
    from keel import ToolContext

    def per_user(ctx: ToolContext, item: str) -> str:
        """A per-user lookup."""
        return item

    with pytest.raises(ToolDefinitionError, match="reads its ToolContext"):
        tool(cache_ttl=60)(per_user)


class FaultyBackend(MemoryCache):
    name = "faulty"

    async def set(self, key: str, value: str, *, ttl_s: float | None) -> None:
        raise RuntimeError("disk full")


async def test_any_failure_of_a_custom_backend_degrades_the_cache_not_the_run() -> None:
    model = ScriptedModel([call("get_order", order_id="A1"), reply("done")])
    agent = Agent("a", model, tools=[get_order], store=MemoryStore(), cache=CachePolicy(backend=FaultyBackend()))
    result = await agent.run("A1")
    assert result.status.value == "completed"
    (warning,) = [e.payload for e in result.events if e.kind is EventKind.FALLBACK_USED]
    assert warning["reason"] == "RuntimeError: disk full"
