"""Model prices: the shipped table, longest-prefix lookup, KEEL_PRICING files and set_price overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_dated_snapshots_match_the_longest_prefix() -> None:
    assert price_for("openai:gpt-4o-mini-2024-07-18") == Price(input=0.15, output=0.60)  # not gpt-4o's
    assert price_for("openai:gpt-4o-2024-08-06") == Price(input=2.50, output=10.00)
    assert price_for("anthropic:claude-haiku-4-5-20251001") == Price(input=1.00, output=5.00)


def test_unknown_models_have_no_price() -> None:
    assert price_for("openai:llama3.1:8b") is None
    assert price_for("gpt-4o-mini") is None  # the provider prefix is part of the name
    assert OpenAIModel("llama3.1:8b", base_url="http://localhost:11434/v1").price is None


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


def test_set_price_overrides_the_table_and_matches_by_prefix() -> None:
    set_price("openai:gpt-4o-mini", input=0.05, output=0.20)
    set_price("openai:ft:gpt-4o-mini:acme", input=0.30, output=1.20)

    assert price_for("openai:gpt-4o-mini") == Price(input=0.05, output=0.20)
    assert price_for("openai:gpt-4o-mini-2024-07-18") == Price(input=0.05, output=0.20)
    assert price_for("openai:ft:gpt-4o-mini:acme:7p4lURel") == Price(input=0.30, output=1.20)
    assert price_for("openai:gpt-4o") == Price(input=2.50, output=10.00)


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ConfigError, match="negative"):
        set_price("openai:x", input=-1, output=0)


def test_cost_arithmetic() -> None:
    price = Price(input=0.15, output=0.60)
    assert price.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert price.cost(120, 30) == pytest.approx((120 * 0.15 + 30 * 0.60) / 1_000_000)
    assert price.cost(0, 0) == 0
