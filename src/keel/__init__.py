"""Keel: a runtime for AI agents that behave in production — bounded, validated, observed, recoverable.

```python
from keel import Agent, Budget, tool

@tool
def get_order(order_id: str) -> dict:
    \"\"\"Look up an order by id.\"\"\"
    ...

agent = Agent("support", "openai:gpt-4o-mini", tools=[get_order], budget=Budget(max_cost_usd=0.50))
result = agent.run_sync("Where is order 1234?")
```
"""

from __future__ import annotations

from keel.agent import Agent
from keel.budget import Budget
from keel.cost import CachePolicy, ModelTiers, SpendLimit
from keel.errors import KeelError
from keel.guardrails.escalation import Escalation
from keel.guardrails.review import ReviewQueue
from keel.journal import Event, EventKind, Phase
from keel.models import Model
from keel.recovery import RetryPolicy
from keel.result import RunReport, RunResult, RunStatus
from keel.store import Store, open_store
from keel.tools import Tool, ToolContext, tool
from keel.usage import PhaseUsage, Usage

__all__ = [
    "Agent",
    "Budget",
    "CachePolicy",
    "Escalation",
    "Event",
    "EventKind",
    "KeelError",
    "Model",
    "ModelTiers",
    "Phase",
    "PhaseUsage",
    "RetryPolicy",
    "ReviewQueue",
    "RunReport",
    "RunResult",
    "RunStatus",
    "SpendLimit",
    "Store",
    "Tool",
    "ToolContext",
    "Usage",
    "open_store",
    "tool",
]

__version__ = "0.1.0"
