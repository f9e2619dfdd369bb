"""The cassettes against the official SDKs' own types, so hand-written exchanges cannot drift from the real APIs.

Every exchange in tests/cassettes is written in each API's exact wire format, by hand (see tests/_replay.py).
Here each request body must validate, strictly and without unknown keys, against the SDK's request TypedDict
(the parameters of ``create``), and each response body against the SDK's response model, strictly and with no
field the model does not declare. Each cassette is then replayed through an SDK client that validates
responses itself (``_strict_response_validation=True``), which also checks that the SDK sends every request
body exactly as the cassette has it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anthropic
import openai
import pydantic
import pytest
from anthropic.types import ErrorResponse, Message
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types import ErrorObject
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

from _replay import CASSETTES, Replay, load_cassette

OFFICIAL_HOSTS = {"api.openai.com", "api.anthropic.com"}
REQUEST_PARAMS = {
    "openai": pydantic.TypeAdapter(CompletionCreateParamsNonStreaming),
    "anthropic": pydantic.TypeAdapter(MessageCreateParamsNonStreaming),
}
NAMES = sorted(path.name for path in CASSETTES.glob("*.json"))


def provider(cassette: str) -> str:
    return cassette.split("_", 1)[0]


def _materialize(value: Any) -> Any:
    """`value` with every lazily validated iterable consumed (pydantic validates ``Iterable[...]`` on use)."""
    if isinstance(value, dict):
        return {key: _materialize(item) for key, item in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [_materialize(item) for item in value]
    return value


def check_request(name: str, body: dict[str, Any]) -> None:
    """Raise unless `body` is a valid non-streaming ``create`` call with no key the SDK does not know."""
    validated = _materialize(REQUEST_PARAMS[provider(name)].validate_python(body, strict=True))
    # A TypedDict drops keys it does not declare, at any depth; a round trip that changes the body had some.
    assert validated == body, f"{name}: request keys unknown to the SDK's parameter types"


def _undeclared(value: object, path: str = "$") -> list[str]:
    """Paths of fields present in a response but not declared by the SDK's models (kept as extras)."""
    if isinstance(value, pydantic.BaseModel):
        found = [f"{path}.{key}" for key in value.model_extra or {}]
        for field in type(value).model_fields:
            found += _undeclared(getattr(value, field), f"{path}.{field}")
        return found
    if isinstance(value, list | tuple):
        return [extra for index, item in enumerate(value) for extra in _undeclared(item, f"{path}[{index}]")]
    if isinstance(value, dict):
        return [extra for key, item in value.items() for extra in _undeclared(item, f"{path}.{key}")]
    return []


def check_response(name: str, status: int, body: dict[str, Any]) -> list[str]:
    """Validate `body` strictly against the SDK's response or error model; return the undeclared fields."""
    parsed: pydantic.BaseModel
    if provider(name) == "anthropic":
        parsed = (Message if status == 200 else ErrorResponse).model_validate_json(json.dumps(body), strict=True)
    elif status == 200:
        parsed = ChatCompletion.model_validate_json(json.dumps(body), strict=True)
    else:
        assert set(body) == {"error"}, f"{name}: an OpenAI error body is {{'error': {{...}}}} and nothing else"
        parsed = ErrorObject.model_validate_json(json.dumps(body["error"]), strict=True)
    return _undeclared(parsed)


@pytest.mark.parametrize("name", NAMES)
def test_request_bodies_fit_the_sdk_parameter_types(name: str) -> None:
    for exchange in load_cassette(name):
        check_request(name, exchange["request"]["body"])


@pytest.mark.parametrize("name", NAMES)
def test_response_bodies_fit_the_sdk_response_types(name: str) -> None:
    for exchange in load_cassette(name):
        response = exchange["response"]
        assert response["headers"]["content-type"] == "application/json"
        undeclared = check_response(name, response["status"], response["body"])
        official = urlsplit(exchange["request"]["url"]).hostname in OFFICIAL_HOSTS
        # Compatible servers add their own fields (Ollama numbers its tool calls); the real APIs do not.
        assert not (official and undeclared), f"{name}: fields the SDK does not declare: {undeclared}"


def _client(name: str, replay: Replay) -> openai.AsyncOpenAI | anthropic.AsyncAnthropic:
    url = replay.exchanges[0]["request"]["url"]
    kwargs: dict[str, Any] = {
        "api_key": "sk-test-keel-0123456789abcdefwxyz",
        "http_client": replay.client(),
        "max_retries": 0,
        "_strict_response_validation": True,
    }
    if provider(name) == "openai":
        return openai.AsyncOpenAI(base_url=url.removesuffix("/chat/completions"), **kwargs)
    return anthropic.AsyncAnthropic(base_url=url.removesuffix("/v1/messages"), **kwargs)


@pytest.mark.parametrize("name", NAMES)
async def test_the_sdks_replay_every_cassette_with_strict_response_validation(name: str) -> None:
    replay = Replay(name)
    client = _client(name, replay)
    if isinstance(client, openai.AsyncOpenAI):
        create, status_error = client.chat.completions.create, openai.APIStatusError
    else:
        create, status_error = client.messages.create, anthropic.APIStatusError
    async with client:
        for exchange in replay.exchanges:
            body, status = exchange["request"]["body"], exchange["response"]["status"]
            if status == 200:
                await create(**body)
            else:
                with pytest.raises(status_error) as raised:
                    await create(**body)
                assert raised.value.status_code == status
    replay.verify()


def _tool_call_body() -> dict[str, Any]:
    return copy.deepcopy(load_cassette("openai_tool_call.json")[0]["response"]["body"])


def _tool_use_body() -> dict[str, Any]:
    return copy.deepcopy(load_cassette("anthropic_tool_use.json")[0]["response"]["body"])


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("openai_x.json", {**_tool_call_body(), "created": "1721650511"}),  # a string where the API sends a number
        ("openai_x.json", {key: value for key, value in _tool_call_body().items() if key != "model"}),
        ("anthropic_x.json", {**_tool_use_body(), "stop_reason": "tool_calls"}),  # OpenAI's word, not Anthropic's
        ("anthropic_x.json", {**_tool_use_body(), "type": "completion"}),
    ],
    ids=["wrong-type", "missing-field", "wrong-literal", "wrong-object-type"],
)
def test_the_response_check_rejects_drift(name: str, body: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        check_response(name, 200, body)


def test_the_response_check_reports_undeclared_fields() -> None:
    body = _tool_use_body()
    body["usage"]["cached_tokens"] = 0

    assert check_response("anthropic_x.json", 200, body) == ["$.usage.cached_tokens"]


def _edited_request(name: str, path: tuple[str | int, ...], change: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(load_cassette(name)[0]["request"]["body"])
    target = body
    for step in path:
        target = target[step]
    target.update(change)
    return body


def test_the_request_check_accepts_optional_keys_the_sdk_declares() -> None:
    check_request("openai_tool_call.json", _edited_request("openai_tool_call.json", ("messages", 1), {"name": "ann"}))


@pytest.mark.parametrize(
    ("name", "path", "change"),
    [
        ("openai_tool_call.json", ("tools", 0, "function"), {"parameter": {}}),  # a typo, two levels down
        ("openai_tool_call.json", ("messages", 1), {"role": "customer"}),
        ("anthropic_tool_use.json", ("tools", 0), {"parameters": {}}),  # OpenAI's key on an Anthropic tool
        ("anthropic_tool_use.json", (), {"max_tokens": "1024"}),
    ],
    ids=["unknown-nested-key", "wrong-literal", "foreign-key", "wrong-type"],
)
def test_the_request_check_rejects_unknown_keys_and_wrong_types(
    name: str, path: tuple[str | int, ...], change: dict[str, Any]
) -> None:
    with pytest.raises((AssertionError, pydantic.ValidationError)):
        check_request(name, _edited_request(name, path, change))
