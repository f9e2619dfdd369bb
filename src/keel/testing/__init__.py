"""Deterministic test doubles for agent logic: no network, no key, same result every time.

```python
from keel.testing import ScriptedModel, call, reply
model = ScriptedModel([call("get_order", order_id="1234"), reply("Order 1234 shipped.")],
                      usage=(120, 30), price=(0.15, 0.60))
```
"""

from __future__ import annotations

from keel.testing.faults import Effect, EffectLog, FlakyTool, GarbageKind, GarbageTool, HangingTool, InjectedFault
from keel.testing.function import FunctionModel
from keel.testing.model_faults import ChaosModel, Fault, FaultyModel
from keel.testing.scripted import Fail, ScriptedModel, Turn, call, calls, fail, raw_call, reply

__all__ = [
    "ChaosModel",
    "Effect",
    "EffectLog",
    "Fail",
    "Fault",
    "FaultyModel",
    "FlakyTool",
    "FunctionModel",
    "GarbageKind",
    "GarbageTool",
    "HangingTool",
    "InjectedFault",
    "ScriptedModel",
    "Turn",
    "call",
    "calls",
    "fail",
    "raw_call",
    "reply",
]
