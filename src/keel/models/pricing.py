"""Model prices: USD per million input and output tokens, from a shipped data file the user can override.

The table is `pricing.json` beside this module (list prices of common OpenAI and Anthropic models). To change
or add prices, either point `KEEL_PRICING` at a JSON file of the same shape (merged over the shipped table) or
call `set_price("openai:my-finetune", input=0.3, output=1.2)` in code.

An entry covers its exact name and that name followed by one dated-snapshot or alias suffix: ``-YYYY-MM-DD``
(``gpt-4o-mini-2024-07-18``), ``-YYYYMMDD`` (``claude-sonnet-4-20250514``), ``-MMDD`` (``gpt-4-0613``) or
``-latest``. Nothing else matches: ``o1-pro``, ``gpt-5-pro`` and ``gpt-4.5-preview`` cost many times ``o1``,
``gpt-5`` and ``gpt-4``, so a plain prefix match would let a ``max_cost_usd`` budget be crossed by that
factor. An unknown name has no price, which makes a cost budget on it a `ConfigError` instead of a guess.
A snapshot priced differently from its family (``gpt-4o-2024-05-13``) has its own entry, and the most
specific entry wins; at the same name, `set_price` beats the table.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from keel.errors import ConfigError

__all__ = ["Price", "load_pricing", "price_for", "set_price"]


@dataclass(frozen=True, slots=True)
class Price:
    """List price of a model in USD per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for the given token counts."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


_overrides: dict[str, Price] = {}

_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")
"""A dated snapshot (``-2024-07-18``, ``-20250514``, ``-0613``) or the ``-latest`` alias of a model."""


def _parse(table: object, source: str) -> dict[str, Price]:
    if not isinstance(table, dict):
        raise ConfigError(f"pricing table {source} must be a JSON object of model name -> prices")
    prices: dict[str, Price] = {}
    for name, entry in table.items():
        if name.startswith("_"):
            continue  # comments and metadata
        try:
            prices[name] = Price(input=float(entry["input"]), output=float(entry["output"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"pricing table {source}: entry {name!r} needs numeric 'input' and 'output' "
                f"(USD per million tokens), got {entry!r}"
            ) from exc
    return prices


@lru_cache(maxsize=1)
def load_pricing() -> dict[str, Price]:
    """The shipped table, merged with the file named by `KEEL_PRICING` when set."""
    shipped = resources.files("keel.models").joinpath("pricing.json").read_text(encoding="utf-8")
    prices = _parse(json.loads(shipped), "pricing.json")
    user_file = os.environ.get("KEEL_PRICING")
    if user_file:
        path = Path(user_file)
        try:
            user = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"KEEL_PRICING={user_file}: cannot read a JSON pricing table ({exc})") from exc
        prices.update(_parse(user, str(path)))
    return prices


def set_price(model: str, *, input: float, output: float) -> None:
    """Set or override the price of `model` ("provider:name") and its dated snapshots for this process."""
    if input < 0 or output < 0:
        raise ConfigError(f"prices must not be negative, got input={input} output={output}")
    _overrides[model] = Price(input=input, output=output)


def price_for(model: str) -> Price | None:
    """The price of `model` ("provider:name"), or of the family it is a snapshot of; None when unknown."""
    table = load_pricing()
    family = _SNAPSHOT_SUFFIX.sub("", model)
    for name in (model, family):
        price = _overrides.get(name, table.get(name))
        if price is not None:
            return price
    return None
