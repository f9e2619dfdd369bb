"""One worker process of the spend attack: many concurrent agent runs against one global ceiling, until killed.

    python bench/_attack_spend_worker.py STORE_URL SCHEMA WORKER RUNS CEILING BARRIER_DIR

Every run asks a priced model for a tool call, runs the tool, then asks for the answer: two model calls, each held
in the spend ledger at its worst case first. The model takes a few milliseconds, so a SIGKILL from the driver lands
while calls are in flight. Prints the runs' statuses as JSON when every run has ended (a killed worker prints
nothing). `agent` is also what the driver resumes the killed workers' runs with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from keel import Agent, SpendLimit, tool
from keel.models import ModelRequest, ModelResponse, ToolResultMessage
from keel.models.base import RequestUsage
from keel.store import open_store
from keel.store.base import Store
from keel.testing import FunctionModel, call

PRICE = (1000.0, 1000.0)
"""USD per million tokens: a tenth of a cent a token, so a call costs about 0.12 USD and ceilings bite fast."""


@tool(trusted=True)
def lookup(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id} shipped"


@dataclass
class Busy:
    """Touches ``busy-<worker>`` once `after` model calls have started: the driver kills only a busy worker."""

    path: Path | None = None
    after: int = 0
    calls: int = 0

    def call_started(self) -> None:
        self.calls += 1
        if self.path is not None and self.calls == self.after:
            self.path.touch()


BUSY = Busy()


async def _respond(request: ModelRequest) -> ModelResponse:
    BUSY.call_started()
    await asyncio.sleep(random.uniform(0.005, 0.06))  # the provider's latency: where a kill lands
    if any(isinstance(m, ToolResultMessage) for m in request.messages):
        return ModelResponse(text="It shipped.", usage=RequestUsage(100, 20))
    return _with_usage(call("lookup", order_id=str(random.randint(1, 9999))))


def _with_usage(response: ModelResponse) -> ModelResponse:
    return dataclasses.replace(response, usage=RequestUsage(100, 20))


def agent(store: Store, ceiling: float) -> Agent:
    """The agent every worker runs (and the driver resumes with)."""
    limit = SpendLimit(per_hour_usd=ceiling, scope="global")
    model = FunctionModel(_respond, price=PRICE, name="test:priced")
    return Agent("desk", model, tools=[lookup], store=store, limits=[limit], max_output_tokens=50, guards=[])


def open_shared(url: str, schema: str) -> Store:
    """The shared store: a SQLite file, or one PostgreSQL schema."""
    if not schema:
        return open_store(url)
    from keel.store.postgres import PostgresStore

    return PostgresStore(url, schema=schema)


async def _run_all(desk: Agent, worker: int, runs: int) -> Counter[str]:
    results = await asyncio.gather(*(desk.run(f"where is order {worker}-{i}?") for i in range(runs)))
    return Counter(r.status.value for r in results)


def main(url: str, schema: str, worker: int, runs: int, ceiling: float, barrier: Path) -> None:
    store = open_shared(url, schema)
    desk = agent(store, ceiling)
    BUSY.path, BUSY.after = barrier / f"busy-{worker}", max(2, runs // 4)
    (barrier / f"ready-{worker}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.005)
    statuses = asyncio.run(_run_all(desk, worker, runs))
    store.close()
    print(json.dumps(statuses))


if __name__ == "__main__":
    url, schema, worker, runs, ceiling, barrier = sys.argv[1:7]
    main(url, schema, int(worker), int(runs), float(ceiling), Path(barrier))
