"""Tools: the `@tool` decorator, the `Tool` it produces, the per-agent `ToolRegistry`, and `ToolContext`."""

from __future__ import annotations

from keel.tools.context import StoreView, ToolContext
from keel.tools.registry import ToolRegistry
from keel.tools.tool import Severity, Tool, tool

__all__ = ["Severity", "StoreView", "Tool", "ToolContext", "ToolRegistry", "tool"]
