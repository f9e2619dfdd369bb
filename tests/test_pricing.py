"""Model prices: the shipped table, exact-or-snapshot lookup, KEEL_PRICING files and set_price overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel import Agent, Budget
from keel.errors import ConfigError
from keel.models import Price, load_pricing, price_for, set_price
from keel.models import pricing as pricing_module
from keel.models.openai import OpenAIModel


@pytest.fixture(autouse=True)
def _fresh_pricing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KEEL_PRICING", raising=False)
    load_pricing.cache_clear()
    yield
    load_pricing.cache_clear()
    pricing_module._overrides.clear()


def write(tmp_path: Path, content: object | str) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_exact_names_come_from_the_shipped_table() -> None:
    assert price_for("openai:gpt-4o-mini") == Price(input=0.15, output=0.60)
    assert price_for("anthropic:claude-haiku-4-5") == Price(input=1.00, output=5.00)


GPT_4O = Price(input=2.50, output=10.00)
GPT_4O_MINI = Price(input=0.15, output=0.60)
SONNET = Price(input=3.00, output=15.00)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("openai:gpt-4o-2024-08-06", GPT_4O),
        ("openai:gpt-4o-mini-2024-07-18", GPT_4O_MINI),
        ("openai:gpt-4-0613", Price(input=30.00, output=60.00)),
        ("openai:o3-2025-04-16", Price(input=2.00, output=8.00)),
        ("anthropic:claude-3-5-sonnet-20241022", SONNET),
        ("anthropic:claude-3-5-sonnet-latest", SONNET),
        ("anthropic:claude-sonnet-4-20250514", SONNET),
        ("anthropic:claude-sonnet-4-5-20250929", SONNET),
        ("anthropic:claude-haiku-4-5-20251001", Price(input=1.00, output=5.00)),
        ("anthropic:claude-opus-4-1-20250805", Price(input=15.00, output=75.00)),
    ],
)
def test_dated_snapshots_and_latest_aliases_get_their_family_price(model: str, family: Price) -> None:
    assert price_for(model) == family


def test_current_names_have_their_own_entries() -> None:
    assert price_for("anthropic:claude-sonnet-4-5") == SONNET
    assert price_for("anthropic:claude-opus-4-1") == Price(input=15.00, output=75.00)
    assert price_for("anthropic:claude-opus-4-5") == Price(input=5.00, output=25.00)


def test_mini_and_full_models_never_share_a_price() -> None:
    assert price_for("openai:gpt-4o-mini") == GPT_4O_MINI
    assert price_for("openai:gpt-4o") == GPT_4O
    assert price_for("openai:gpt-4o-mini-2024-07-18") == GPT_4O_MINI
    assert price_for("openai:gpt-4o-2024-11-20") == GPT_4O


def test_a_snapshot_priced_unlike_its_family_has_its_own_entry() -> None:
    assert price_for("openai:gpt-4o-2024-05-13") == Price(input=5.00, output=15.00)


@pytest.mark.parametrize(
    "model",
    [
        "openai:o1-pro",  # 10x o1
        "openai:o1-pro-2025-03-19",
        "openai:o3-pro",  # 10x o3
        "openai:gpt-5-pro",  # 12x gpt-5
        "openai:gpt-4.5-preview",  # 2.5x gpt-4
        "openai:gpt-4-32k",  # 2x gpt-4
        "openai:gpt-4o-audio-preview",
        "openai:gpt-5-chat-latest",  # "-latest" of a name the table lacks
        "anthropic:claude-opus-4-1-preview",
    ],
)
def test_other_suffixes_are_unknown_rather_than_a_cheaper_relatives_price(model: str) -> None:
    assert price_for(model) is None


def test_a_cost_budget_on_a_premium_variant_is_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    with pytest.raises(ConfigError, match="o1-pro"):
        Agent("support", "openai:o1-pro", budget=Budget(max_cost_usd=1.0))


def test_a_model_knows_its_price(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert OpenAIModel("gpt-4o-mini-2024-07-18").price == Price(input=0.15, output=0.60)


def test_keel_pricing_file_is_merged_over_the_shipped_table(tmp_path, monkeypatch) -> None:
    path = write(
        tmp_path,
        {
            "_comment": "negotiated prices",
            "openai:gpt-4o-mini": {"input": 0.10, "output": 0.40},
            "openai:my-finetune": {"input": 0.30, "output": 1.20},
        },
    )
    monkeypatch.setenv("KEEL_PRICING", str(path))
    load_pricing.cache_clear()

    assert price_for("openai:gpt-4o-mini-2024-07-18") == Price(input=0.10, output=0.40)
    assert price_for("openai:my-finetune") == Price(input=0.30, output=1.20)
    assert price_for("openai:gpt-4o") == Price(input=2.50, output=10.00)  # shipped entries stay
    assert "_comment" not in load_pricing()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        ["openai:gpt-4o-mini", 0.1],
        {"openai:gpt-4o-mini": {"input": 0.1}},
        {"openai:gpt-4o-mini": {"input": "cheap", "output": 0.4}},
    ],
    ids=["invalid-json", "not-an-object", "missing-output", "non-numeric"],
)
def test_a_malformed_pricing_file_is_a_config_error_naming_the_file(tmp_path, monkeypatch, content) -> None:
    path = write(tmp_path, content)
    monkeypatch.setenv("KEEL_PRICING", str(path))
    load_pricing.cache_clear()

    with pytest.raises(ConfigError, match="prices.json"):
        price_for("openai:gpt-4o-mini")


def test_a_missing_pricing_file_is_a_config_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KEEL_PRICING", str(tmp_path / "nowhere.json"))
    load_pricing.cache_clear()

    with pytest.raises(ConfigError, match="nowhere.json"):
        load_pricing()


def test_set_price_overrides_the_table_and_covers_snapshots_only() -> None:
    set_price("openai:gpt-4o-mini", input=0.05, output=0.20)
    set_price("openai:o1", input=12.00, output=48.00)
    set_price("openai:ft:gpt-4o-mini-2024-07-18:acme::7p4lURel", input=0.30, output=1.20)

    assert price_for("openai:gpt-4o-mini") == Price(input=0.05, output=0.20)
    assert price_for("openai:gpt-4o-mini-2024-07-18") == Price(input=0.05, output=0.20)
    assert price_for("openai:gpt-4o") == GPT_4O
    assert price_for("openai:o1-2024-12-17") == Price(input=12.00, output=48.00)
    assert price_for("openai:o1-pro") is None
    assert price_for("openai:ft:gpt-4o-mini-2024-07-18:acme::7p4lURel") == Price(input=0.30, output=1.20)
    assert price_for("openai:ft:gpt-4o-mini-2024-07-18:acme::other") is None


def test_a_priced_premium_variant_is_used_as_given() -> None:
    set_price("openai:o1-pro", input=150.00, output=600.00)

    assert price_for("openai:o1-pro-2025-03-19") == Price(input=150.00, output=600.00)
    assert price_for("openai:o1") == Price(input=15.00, output=60.00)


def test_the_most_specific_entry_wins_over_a_family_override() -> None:
    set_price("openai:gpt-4o", input=2.00, output=8.00)

    assert price_for("openai:gpt-4o-2024-08-06") == Price(input=2.00, output=8.00)
    assert price_for("openai:gpt-4o-2024-05-13") == Price(input=5.00, output=15.00)  # its own table entry


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ConfigError, match="negative"):
        set_price("openai:x", input=-1, output=0)


def test_cost_arithmetic() -> None:
    price = Price(input=0.15, output=0.60)
    assert price.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert price.cost(120, 30) == pytest.approx((120 * 0.15 + 30 * 0.60) / 1_000_000)
    assert price.cost(0, 0) == 0
