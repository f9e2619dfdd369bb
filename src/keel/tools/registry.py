"""The per-agent tool registry: the allow-list (G1) and the source of the tool specs a model sees."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from keel.errors import ConfigError
from keel.models.base import ToolSpec
from keel.tools.tool import Tool, tool

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """An agent's tools by name. A tool that is not registered here never runs for that agent."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            declared = item if isinstance(item, Tool) else tool(item)
            if declared.name in self._tools:
                raise ConfigError(f"two tools are named {declared.name!r}; tool names must be unique per agent")
            self._tools[declared.name] = declared
        for declared in self._tools.values():
            unknown = [name for name in declared.alternatives if name not in self._tools]
            if unknown:
                raise ConfigError(
                    f"tool {declared.name!r} names alternatives that are not among the agent's tools: "
                    f"{', '.join(map(repr, unknown))} (registered: {', '.join(self._tools) or 'none'})"
                )
        self.specs: tuple[ToolSpec, ...] = tuple(
            ToolSpec(t.name, t.description, t.parameters) for t in self._tools.values()
        )
        """What the model is told about the tools, in registration order."""

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, or None when it is not on the allow-list."""
        return self._tools.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        """Registered tool names, in registration order."""
        return tuple(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
