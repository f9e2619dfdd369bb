"""Provider SDKs' own logs: at DEBUG they log request content, which must reach no handler in clear."""

import logging

import pytest

from _fault_server import FaultServer, Reply
from keel import Agent, RunStatus
from keel.models.anthropic import AnthropicModel
from keel.models.openai import OpenAIModel
from keel.store import MemoryStore

CARD, EMAIL = "4539 1488 0343 6467", "jane.roe@example.org"


@pytest.mark.usefixtures("local_provider_requests")
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_provider_sdk_logging_requests_at_debug_logs_them_redacted(provider, caplog) -> None:
    """Found by bench/attack.py: with DEBUG logging, the Anthropic SDK logged each request's messages, so the task
    and every tool result reached the logs in clear."""
    with FaultServer(Reply("noted")) as server:
        if provider == "anthropic":
            model = AnthropicModel("claude-test", base_url=server.anthropic_base_url, api_key="test", max_retries=0)
        else:
            model = OpenAIModel("gpt-test", base_url=server.openai_base_url, api_key="test", max_retries=0)
        with caplog.at_level(logging.DEBUG):
            result = await Agent("desk", model, store=MemoryStore(), guards=[]).run(f"I am {EMAIL}, card {CARD}")
        await model.aclose()

    assert result.status is RunStatus.COMPLETED
    assert caplog.records, "the SDK logged at DEBUG"
    assert EMAIL not in caplog.text and CARD not in caplog.text
    if provider == "anthropic":  # this SDK logs the request's body: it is there, redacted
        assert "I am [email], card [payment_card]" in caplog.text
