"""Model prices: USD per million input and output tokens, from a shipped data file the user can override.

The table is `pricing.json` beside this module (list prices of common OpenAI and Anthropic models). To change
or add prices, either point `KEEL_PRICING` at a JSON file of the same shape (merged over the shipped table) or
call `set_price("openai:my-finetune", input=0.3, output=1.2)` in code. Lookups match the longest known prefix of
the model name, so dated snapshots (``gpt-4o-mini-2024-07-18``) get their family's price.
"""

from __future__ import annotations

import json
import os
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
    """Set or override the price of `model` ("provider:name") for this process."""
    if input < 0 or output < 0:
        raise ConfigError(f"prices must not be negative, got input={input} output={output}")
    _overrides[model] = Price(input=input, output=output)


def price_for(model: str) -> Price | None:
    """The price of `model`, matching the longest known prefix; None when unknown."""
    if model in _overrides:
        return _overrides[model]
    table = load_pricing()
    if model in table:
        return table[model]
    best = max((name for name in (*_overrides, *table) if model.startswith(name)), key=len, default=None)
    if best is None:
        return None
    return _overrides.get(best) or table[best]
