"""Replay provider HTTP exchanges (tests/cassettes/*.json) through an httpx2.MockTransport.

A cassette is a JSON list of ``{"request": {"method", "url", "body"}, "response": {"status", "headers",
"body"}}``: exchanges in each API's exact wire format. They were written by hand from the providers' API
references, not recorded from the live APIs (there is no network where these tests run);
tests/test_models_cassettes.py validates every body against the official SDKs' own types so that they cannot
drift from the real format unnoticed.

Requests must arrive in order and match the cassette's method, URL and JSON body exactly. A mismatch cannot
simply raise inside the transport (the SDKs would turn that into a connection error and retry), so it is
answered with HTTP 599 and kept; `verify` reports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2

from keel.models import ToolSpec

__all__ = ["CASSETTES", "GET_ORDER", "ORDER_1234", "SYSTEM", "Replay", "load_cassette"]

CASSETTES = Path(__file__).parent / "cassettes"

# The conversation the cassettes were written for: its system prompt, its one tool and that tool's result.
SYSTEM = "You help customers with orders. Be brief."
GET_ORDER = ToolSpec(
    name="get_order",
    description="Look up an order by id.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "The order number."}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
)
ORDER_1234 = '{"order_id": "1234", "status": "shipped", "carrier": "UPS", "eta": "2024-07-22"}'


def load_cassette(name: str) -> list[dict[str, Any]]:
    exchanges: list[dict[str, Any]] = json.loads((CASSETTES / name).read_text(encoding="utf-8"))
    return exchanges


class Replay:
    """Answers requests from a cassette, in order, checking each against the cassette's request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.exchanges = load_cassette(name)
        self.sent: list[httpx2.Request] = []
        self.mismatches: list[str] = []

    def _mismatch(self, request: httpx2.Request, body: object) -> str | None:
        index = len(self.sent) - 1
        if index >= len(self.exchanges):
            return f"request #{index + 1} is not in {self.name}"
        expected = self.exchanges[index]["request"]
        if request.method != expected["method"] or str(request.url) != expected["url"]:
            return f"request #{index + 1}: sent {request.method} {request.url}, expected {expected['url']}"
        if body != expected["body"]:
            sent, wanted = json.dumps(body, sort_keys=True), json.dumps(expected["body"], sort_keys=True)
            return f"request #{index + 1} body differs from {self.name}:\nsent:     {sent}\nexpected: {wanted}"
        return None

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request)
        body = json.loads(request.content) if request.content else None
        problem = self._mismatch(request, body)
        if problem is not None:
            self.mismatches.append(problem)
            return httpx2.Response(599, json={"error": {"message": "cassette mismatch", "type": "test"}})
        response = self.exchanges[len(self.sent) - 1]["response"]
        return httpx2.Response(response["status"], headers=response["headers"], json=response["body"])

    def body(self, index: int) -> Any:
        """The JSON body of the `index`-th request sent."""
        return json.loads(self.sent[index].content)

    def verify(self) -> None:
        """Fail unless every exchange of the cassette was replayed and every request matched."""
        assert not self.mismatches, "\n".join(self.mismatches)
        assert len(self.sent) == len(self.exchanges), (
            f"{self.name}: {len(self.sent)} of {len(self.exchanges)} exchanges were replayed"
        )

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self))
