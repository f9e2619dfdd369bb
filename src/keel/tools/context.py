"""What a tool can know about the call it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.store.base import Store

__all__ = ["ToolContext"]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Passed to a tool that declares a parameter annotated `ToolContext`; never part of its schema."""

    run_id: str
    """The run making the call."""
    call_id: str
    """The model's id for this call."""
    idempotency_key: str
    """Stable for this call across retries and resumes: hand it to side-effecting APIs so a repeat is a no-op."""
    tool_name: str
    agent: str
    session_id: str | None
    attempt: int
    """1 for the first attempt."""
    store: Store
    """The run's store (journal, and later memory and caches)."""
