"""Turn a Python function's signature and docstring into a validated arguments model and a JSON schema."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

import docstring_parser
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticSchemaGenerationError,
    PydanticUserError,
    create_model,
)

from keel.errors import ToolDefinitionError
from keel.tools.context import ToolContext

__all__ = ["FunctionSchema", "function_schema"]


@dataclass(frozen=True, slots=True)
class FunctionSchema:
    """A function's tool description: what to tell the model and how to check what it sends back."""

    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""
    args_model: type[BaseModel]
    """Validates the model's JSON arguments (unknown argument names are refused)."""
    context_param: str | None
    """Name of the `ToolContext` parameter, if the function takes one."""


def function_schema(func: Callable[..., Any], name: str, description: str | None) -> FunctionSchema:
    """Build the schema of `func`; raise `ToolDefinitionError` when a parameter cannot be described."""
    try:
        hints = get_type_hints(func, include_extras=True)  # keep Annotated[int, Field(ge=1)] constraints
    except Exception as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot resolve its type hints ({exc})") from exc
    doc = docstring_parser.parse(inspect.getdoc(func) or "")
    param_docs = {p.arg_name: p.description for p in doc.params if p.description}
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {name!r}: *args/**kwargs parameters cannot be described to a model")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"tool {name!r}: positional-only parameter {param.name!r} cannot receive a named argument"
            )
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if annotation is inspect.Parameter.empty:
            raise ToolDefinitionError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, Field(default, description=param_docs.get(param.name)))
    try:
        args_model = create_model(
            f"{name}_args", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False), **fields
        )
        parameters = args_model.model_json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise ToolDefinitionError(
            f"tool {name!r}: a parameter type cannot be expressed as JSON schema "
            f"(use str, int, float, bool, lists, dicts, enums, dataclasses or pydantic models): {exc}"
        ) from exc
    parameters.pop("title", None)
    text = description or "\n\n".join(p for p in (doc.short_description, doc.long_description) if p) or ""
    return FunctionSchema(text.strip(), parameters, args_model, context_param)
