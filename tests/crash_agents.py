"""Agents that are killed mid-run by the crash tests, and resumed by them in another process.

The model is a `FunctionModel` that decides from the conversation alone, so a resumed run (a new process, a new
model object) continues where the dead one stopped. Every tool invocation is appended to the file named by
``KEEL_TEST_EFFECTS`` (one JSON line: tool, call id, idempotency key), fsynced before the tool goes on, so the
tests count effects across processes. The step named by ``KEEL_TEST_HANG_AT`` (a tool, ``model`` for the third
model call, ``guard`` for the judging of the answer) blocks until the test kills the process; with
``KEEL_TEST_HOST`` the process pretends to run on another host.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from keel import Agent, RetryPolicy, SpendLimit, ToolContext, tool
from keel.guardrails import GuardContext, Verdict
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.testing import FunctionModel, call, reply

PLAN = [("lookup", "A-1"), ("pay", "A-1"), ("lookup", "A-2"), ("charge", "A-2"), ("pay", "A-3")]
"""What the model does, one call a turn: reads, an API that deduplicates by key (pay), one that cannot (charge)."""


def _effect(tool: str, ctx: ToolContext | None, order_id: str) -> None:
    path = os.environ.get("KEEL_TEST_EFFECTS")
    if path:
        line = {"tool": tool, "order": order_id, "key": ctx.idempotency_key if ctx else None, "pid": os.getpid()}
        with Path(path).open("a") as file:
            file.write(json.dumps(line) + "\n")
            file.flush()
            os.fsync(file.fileno())
    _hang_if(tool)
    time.sleep(float(os.environ.get("KEEL_TEST_DELAY", "0")))


def _hang_if(step: str) -> None:
    """Block (for the test to kill the process) when `step` is the one named by ``KEEL_TEST_HANG_AT``."""
    if os.environ.get("KEEL_TEST_HANG_AT") == step:
        time.sleep(60)


@tool(trusted=True, timeout_s=120)
def lookup(order_id: str) -> str:
    """Read an order (no side effect)."""
    _effect("lookup", None, order_id)
    return f"order {order_id}: open"


@tool(side_effects=True, severity="low", trusted=True, timeout_s=120)
def pay(ctx: ToolContext, order_id: str) -> str:
    """Pay an order through an API that deduplicates on the idempotency key it is given."""
    _effect("pay", ctx, order_id)
    return f"paid {order_id}"


@tool(side_effects=True, severity="low", trusted=True, timeout_s=120)
def charge(order_id: str) -> str:
    """Charge an order through an API that cannot deduplicate (no key)."""
    _effect("charge", None, order_id)
    return f"charged {order_id}"


def plan_model(request: ModelRequest) -> ModelResponse:
    done = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if len(done) == 2:
        _hang_if("model")
    if len(done) < len(PLAN):
        name, order = PLAN[len(done)]
        return call(name, order_id=order)
    return reply("All orders handled.")


class DyingGuard:
    """Passes every answer, but blocks (to be killed) while judging when the test asks for it."""

    name = "dying"

    def check(self, text: str, context: GuardContext) -> Verdict:
        _hang_if("guard")
        return Verdict(guard=self.name, action="pass")


desk = Agent(
    "crash-desk",
    FunctionModel(plan_model, price=(1.0, 1.0)),
    tools=[lookup, pay, charge],
    guards=[DyingGuard()],
    retry=RetryPolicy(max_attempts=1),
    limits=[SpendLimit(per_day_usd=100, scope="agent")],
)
"""Journals to the store it is given; holds every model call under a spending limit (budget_reserved)."""


def main(store: str, task: str = "Handle orders A-1 to A-3.") -> None:
    """Run the plan in this process (the test kills it somewhere along the way)."""
    if host := os.environ.get("KEEL_TEST_HOST"):
        socket.gethostname = lambda: host  # the run's owner is recorded as on another machine
    result = desk.with_store(store).run_sync(task)
    print(result.run_id, result.status.value, flush=True)
    _hang_if("exit")  # killed before SQLite folds its write-ahead log into the database file


def resume_main(store: str, run_id: str, barrier: str = "", worker: str = "0") -> None:
    """Resume the run in this process (the test may kill it too); print its status, or the refusal it met.

    With `barrier`, first touch ``barrier/ready-<worker>`` and wait for ``barrier/go`` (tests/_processes.py), so
    several resumers contend from their first operation.
    """
    from keel.errors import ResumeError

    if barrier:
        gate = Path(barrier)
        (gate / f"ready-{worker}").touch()
        while not (gate / "go").exists():  # bounded by the test, which kills the workers it waits for
            time.sleep(0.002)
    try:
        result = desk.with_store(store).resume_sync(run_id)
    except ResumeError as exc:
        print("refused", str(exc).replace("\n", " "), flush=True)
        return
    print(result.run_id, result.status.value, flush=True)
