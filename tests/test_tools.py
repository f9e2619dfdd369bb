import threading
from enum import Enum
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from keel import Agent, ToolContext, tool
from keel.errors import ConfigError, ToolDefinitionError
from keel.testing import ScriptedModel, call, reply
from keel.tools import Tool, ToolRegistry


class Priority(Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    street: str
    city: str


@tool
def get_order(order_id: str, include_items: bool = False) -> dict[str, object]:
    """Look up an order by id.

    Args:
        order_id: The order number, e.g. "1234".
        include_items: Whether to list the items.
    """
    return {"id": order_id, "items": ["mug"] if include_items else []}


@tool(severity="high", side_effects=True, timeout_s=5)
async def refund(ctx: ToolContext, order_id: str, amount: float) -> str:
    """Refund an order."""
    return f"refunded {amount} ({ctx.idempotency_key})"


def test_schema_comes_from_type_hints_and_docstring():
    assert isinstance(get_order, Tool)
    assert get_order.name == "get_order"
    assert get_order.description == "Look up an order by id."
    params = get_order.parameters
    assert params["type"] == "object"
    assert params["required"] == ["order_id"]
    assert params["properties"]["order_id"]["type"] == "string"
    assert params["properties"]["order_id"]["description"] == 'The order number, e.g. "1234".'
    assert params["properties"]["include_items"]["default"] is False
    assert params["additionalProperties"] is False


def test_tool_context_is_excluded_from_the_schema_and_options_are_kept():
    assert set(refund.parameters["properties"]) == {"order_id", "amount"}
    assert refund.context_param == "ctx"
    assert refund.is_async
    assert (refund.severity, refund.side_effects, refund.timeout_s) == ("high", True, 5.0)
    assert (get_order.severity, get_order.side_effects) == ("low", False)


def test_rich_parameter_types_get_nested_schemas():
    @tool
    def ship(address: Address, priority: Priority, tags: list[str]) -> str:
        """Ship a parcel."""
        return "ok"

    params = ship.parameters
    assert set(params["required"]) == {"address", "priority", "tags"}
    assert "Address" in params["$defs"] and "Priority" in params["$defs"]


def test_unsupported_parameter_type_is_refused_at_declaration():
    with pytest.raises(ToolDefinitionError, match="cannot be expressed as JSON schema"):

        @tool
        def bad(lock: threading.Lock) -> str:  # type: ignore[valid-type]
            """Not describable."""
            return ""


def test_missing_annotation_and_varargs_are_refused():
    with pytest.raises(ToolDefinitionError, match="needs a type annotation"):

        @tool
        def untyped(x) -> str:  # type: ignore[no-untyped-def]
            """No hint."""
            return ""

    with pytest.raises(ToolDefinitionError, match="positional-only"):

        @tool
        def positional(x: int, /) -> str:
            """Positional only."""
            return ""

    with pytest.raises(ToolDefinitionError, match=r"\*args"):

        @tool
        def varargs(*names: str) -> str:
            """Varargs."""
            return ""


def test_bad_severity_and_timeout_are_refused():
    with pytest.raises(ToolDefinitionError, match="severity"):
        tool(name="f", severity="extreme")(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="valid identifier"):
        tool(lambda: None)
    with pytest.raises(ToolDefinitionError, match="timeout_s"):

        @tool(timeout_s=0)
        def f() -> str:
            """F."""
            return ""


def test_registry_is_the_allow_list_and_names_are_unique():
    registry = ToolRegistry([get_order, refund])
    assert registry.names == ("get_order", "refund")
    assert "refund" in registry and "delete_everything" not in registry
    assert [spec.name for spec in registry.specs] == ["get_order", "refund"]
    with pytest.raises(ConfigError, match="two tools are named"):
        ToolRegistry([get_order, get_order])


def test_plain_functions_become_tools_when_given_to_an_agent():
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model = ScriptedModel([call("add", a=2, b=3), reply("5")])
    agent = Agent("calc", model, tools=[add], store="memory://")
    result = agent.run_sync("2+3?")
    assert result.ok
    assert model.requests[0].tools[0].name == "add"
    assert model.requests[1].messages[-1].content == "5"


def test_a_tool_stays_callable_directly():
    assert get_order("7") == {"id": "7", "items": []}


def test_a_side_effecting_tool_without_a_severity_is_high():
    @tool(side_effects=True)
    def send_email(to: str) -> str:
        """Send an email."""
        return "sent"

    @tool(side_effects=True, severity="medium")
    def tag_ticket(tag: str) -> str:
        """Tag a ticket."""
        return "tagged"

    assert send_email.severity == "high"
    assert tag_ticket.severity == "medium"


def test_a_tool_cost_must_be_a_finite_non_negative_amount():
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ToolDefinitionError, match="cost_usd"):
            tool(name="lookup", cost_usd=bad)(lambda: None)


def test_annotated_field_constraints_are_part_of_the_schema_and_enforced() -> None:
    @tool
    def pick(count: Annotated[int, Field(ge=1, le=5)]) -> int:
        """Pick some items."""
        return count

    assert pick.parameters["properties"]["count"]["maximum"] == 5
    with pytest.raises(ValidationError):
        pick.args_model.model_validate({"count": 9})
