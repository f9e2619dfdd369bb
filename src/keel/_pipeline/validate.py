"""Validate: every proposed tool call is checked against the registry before anything runs (G1, E3).

An unregistered tool, arguments that are not JSON, or arguments that fail the tool's schema are rejected
here, for every pattern; the model gets the reason back as a tool error it can correct.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from keel.models.base import ToolCall
from keel.tools.registry import ToolRegistry
from keel.tools.tool import Tool

__all__ = ["Rejected", "ValidCall", "validate_call"]


@dataclass(frozen=True, slots=True)
class ValidCall:
    """A call that may proceed: the tool exists and the arguments passed its schema."""

    call: ToolCall
    tool: Tool
    args: BaseModel


@dataclass(frozen=True, slots=True)
class Rejected:
    """A call refused before running, with the reason the model will read."""

    call: ToolCall
    reason: str


def validate_call(registry: ToolRegistry, call: ToolCall) -> ValidCall | Rejected:
    """Check one proposed call against the allow-list and the tool's argument schema."""
    tool = registry.get(call.name)
    if tool is None:
        return Rejected(call, _unknown_tool(registry, call.name))
    try:
        args = tool.args_model.model_validate_json(call.arguments or "{}")
    except ValidationError as exc:
        return Rejected(call, _invalid_arguments(tool, exc))
    return ValidCall(call, tool, args)


def _unknown_tool(registry: ToolRegistry, name: str) -> str:
    available = ", ".join(registry.names) or "none"
    close = difflib.get_close_matches(name, registry.names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown tool {name!r}: it is not one of this agent's tools ({available}).{hint}"


def _invalid_arguments(tool: Tool, exc: ValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            problems.append(f"arguments are not valid JSON ({error['msg']})")
            continue
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    schema: dict[str, Any] = tool.parameters
    return (
        f"Invalid arguments for tool {tool.name!r}: {'; '.join(problems)}. "
        f"Expected arguments matching this JSON schema: {json.dumps(schema, separators=(',', ':'))}"
    )
