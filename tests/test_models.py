"""infer_model: "provider:model" names to Model instances, with clear errors for everything else."""

from __future__ import annotations

import pytest

from keel.errors import MissingCredentialsError, UnknownModelError
from keel.models import Model, infer_model
from keel.models.anthropic import AnthropicModel
from keel.models.openai import OpenAIModel
from keel.testing import ScriptedModel, reply

CREDENTIAL_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)


def test_openai_name_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    model = infer_model("openai:gpt-4o-mini")

    assert isinstance(model, OpenAIModel)
    assert model.name == "openai:gpt-4o-mini"
    assert model.model_name == "gpt-4o-mini"


def test_anthropic_name_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")

    model = infer_model("anthropic:claude-haiku-4-5")

    assert isinstance(model, AnthropicModel)
    assert model.name == "anthropic:claude-haiku-4-5"


def test_model_names_may_contain_colons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")

    model = infer_model("openai:llama3.1:8b")

    assert isinstance(model, OpenAIModel)
    assert model.model_name == "llama3.1:8b"


def test_a_model_instance_passes_through() -> None:
    model = ScriptedModel([reply("hi")])
    assert infer_model(model) is model
    assert isinstance(model, Model)


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="'openia'.*known providers: openai, anthropic"):
        infer_model("openia:x")


@pytest.mark.parametrize("name", ["nocolon", "openai:"])
def test_malformed_names(name: str) -> None:
    with pytest.raises(UnknownModelError):
        infer_model(name)


def test_missing_openai_key_names_the_variable() -> None:
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY") as raised:
        infer_model("openai:gpt-4o-mini")
    assert "OPENAI_BASE_URL" in str(raised.value)


def test_missing_anthropic_key_names_the_variable() -> None:
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
        infer_model("anthropic:claude-haiku-4-5")


def test_a_base_url_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    assert isinstance(infer_model("openai:gpt-4o-mini"), OpenAIModel)


def test_construction_needs_no_event_loop_and_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = OpenAIModel("gpt-4o-mini", base_url="http://127.0.0.1:9/v1")  # nothing listens on port 9
    assert model._client is None and not model._loop_clients  # the SDK client is built on the first request
