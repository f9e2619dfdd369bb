"""Token counting before a call: exact for known OpenAI models, a conservative estimate otherwise."""

from __future__ import annotations

import json
import math
import warnings
from functools import cache

import pytest

from _replay import GET_ORDER, SYSTEM, load_cassette
from keel.models import AssistantMessage, ModelRequest, ToolCall, ToolResultMessage, UserMessage
from keel.models.openai import OpenAIModel
from keel.models.tokens import (
    PER_MESSAGE_OVERHEAD,
    PER_REQUEST_OVERHEAD,
    UNKNOWN_TOKENIZER_FACTOR,
    count_request_tokens,
    count_text_tokens,
    encoding_for_model,
)

CALL = ToolCall("call_Qx7Lp2Vb9GkM4sT1nR8aZc3d", "get_order", '{"order_id":"1234"}')
RESULT = '{"order_id": "1234", "status": "shipped", "carrier": "UPS", "eta": "2024-07-22"}'
# The two turns of tests/cassettes/openai_tool_call.json.
TURN_1 = ModelRequest(SYSTEM, (UserMessage("Where is order 1234?"),), tools=(GET_ORDER,))
TURN_2 = ModelRequest(
    SYSTEM,
    (
        UserMessage("Where is order 1234?"),
        AssistantMessage(tool_calls=(CALL,)),
        ToolResultMessage(CALL.id, CALL.name, RESULT),
    ),
    tools=(GET_ORDER,),
)
TEXT = "Refunds are available within 30 days of delivery — ¿unused items only? 東京 🚚 order #1234."


@cache
def _bpe(encoding: str):
    with warnings.catch_warnings():  # bpe-openai 0.1.x uses a deprecated importlib.resources call
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding(encoding)


def exact(text: str, encoding: str = "o200k_base") -> int:
    """bpe-openai's own count, independent of keel.models.tokens."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return len(_bpe(encoding).encode_ordinary(text))


def billed_prompt_tokens(index: int) -> int:
    """The ``prompt_tokens`` the cassette's turn reports (hand-written, like the whole cassette)."""
    return load_cassette("openai_tool_call.json")[index]["response"]["body"]["usage"]["prompt_tokens"]


@pytest.fixture
def gpt4o_mini(monkeypatch: pytest.MonkeyPatch) -> OpenAIModel:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return OpenAIModel("gpt-4o-mini", api_key="sk-test")


def test_known_openai_model_is_counted_exactly_plus_overheads(gpt4o_mini: OpenAIModel) -> None:
    specs = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in TURN_1.tools]
    expected = (
        PER_REQUEST_OVERHEAD
        + exact(SYSTEM)
        + PER_MESSAGE_OVERHEAD
        + exact("Where is order 1234?")
        + exact(json.dumps(specs, sort_keys=True))
    )

    assert gpt4o_mini.count_input_tokens(TURN_1) == expected


@pytest.mark.parametrize(("request_", "index"), [(TURN_1, 0), (TURN_2, 1)])
def test_count_is_an_upper_bound_of_the_cassettes_prompt_tokens(
    gpt4o_mini: OpenAIModel, request_: ModelRequest, index: int
) -> None:
    # A plausibility check, not a measurement: the cassette's usage figures are written by hand.
    assert gpt4o_mini.count_input_tokens(request_) >= billed_prompt_tokens(index)


def test_tool_calls_and_results_are_counted(gpt4o_mini: OpenAIModel) -> None:
    added = gpt4o_mini.count_input_tokens(TURN_2) - gpt4o_mini.count_input_tokens(TURN_1)
    call_text = exact(f"{CALL.name}\n{CALL.arguments}")
    result_text = exact(f"{RESULT}\n{CALL.name}")
    assert added == 2 * PER_MESSAGE_OVERHEAD + call_text + result_text


def test_unknown_tokenizer_estimate_is_at_least_the_exact_cl100k_count() -> None:
    cl100k = exact(TEXT, "cl100k_base")
    assert count_text_tokens(TEXT, None) == math.ceil(cl100k * UNKNOWN_TOKENIZER_FACTOR)
    assert count_text_tokens(TEXT, None) >= cl100k
    assert count_request_tokens(TURN_2, None) >= count_request_tokens(TURN_2, "cl100k_base")


def test_a_local_model_behind_openai_compat_is_estimated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    model = OpenAIModel("llama3.1:8b")
    assert model.count_input_tokens(TURN_1) == count_request_tokens(TURN_1, None)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("openai:gpt-4o-mini", "o200k_base"),
        ("openai:gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("openai:o3-mini", "o200k_base"),
        ("openai:gpt-4-turbo", "cl100k_base"),
        ("openai:gpt-3.5-turbo", "cl100k_base"),
        ("openai:llama3.1:8b", None),
        ("anthropic:claude-haiku-4-5", None),
    ],
)
def test_encoding_for_model(name: str, encoding: str | None) -> None:
    assert encoding_for_model(name) == encoding


def test_empty_text_costs_nothing() -> None:
    assert count_text_tokens("", "o200k_base") == 0
    assert count_text_tokens("", None) == 0


def test_output_schema_is_counted() -> None:
    schema = {"type": "object", "properties": {"order_id": {"type": "string"}}}
    typed = ModelRequest(SYSTEM, TURN_1.messages, output_schema=schema)
    untyped = ModelRequest(SYSTEM, TURN_1.messages)
    difference = count_request_tokens(typed, "o200k_base") - count_request_tokens(untyped, "o200k_base")
    assert difference == exact(json.dumps(schema, sort_keys=True))


WORDS = ("refund", "order", "shipped", "東京", "🚚", "#1234", "delivery", "¿unused?", "\n")


def prose(chars: int) -> str:
    """Varied text of about `chars` characters (words from TEXT's alphabets, spaces and newlines)."""
    words = [WORDS[(i * 7 + i // 5) % len(WORDS)] for i in range(chars // 5)]
    return " ".join(words)[:chars]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_a_long_text_is_counted_in_pieces_never_under_the_exact_count(encoding: str) -> None:
    text = prose(900_000)  # the tokenizer's limits (1 M characters, 200 k tokens) bar it whole: counted in pieces
    pieces = -(-len(text) // 50_000)
    assert exact(text[:400_000], encoding) <= count_text_tokens(text[:400_000], encoding)
    assert count_text_tokens(text[:400_000], encoding) <= exact(text[:400_000], encoding) + 2 * pieces


@pytest.mark.parametrize("text", ["word " * 2_000_000, "a" * 10_000_000, "ab" * 600_000, "é" * 1_000_000])
def test_a_text_of_any_size_is_counted_as_an_upper_bound(text: str) -> None:
    # A repeated pattern: its exact count grows with its length, so a prefix's count, scaled, is a fair floor.
    for encoding in ("o200k_base", "cl100k_base"):
        floor = exact(text[:100_000], encoding) * len(text) / 100_000
        assert count_text_tokens(text, encoding) >= 0.99 * floor
        assert count_text_tokens(text, None) >= 0.99 * floor


def test_a_request_with_a_ten_megabyte_message_is_counted() -> None:
    request = ModelRequest(SYSTEM, (UserMessage("word " * 2_000_000),))
    assert count_request_tokens(request, "o200k_base") >= 2_000_000
