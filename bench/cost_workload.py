"""What tiering, caching and batching save on a reference workload, at equal task success (C1–C4).

    python bench/cost_workload.py [--tasks 360] [--hard 0.2] [--small-fails 0.5]

The workload: a support team's day in four kinds of task, shuffled (seeded).
- **routing** (30%): classify a ticket as billing, shipping or technical (one answer from a fixed set).
- **extraction** (20%): pull the order id and the amount out of a message (typed output: a pydantic model).
- **lookup** (30%): "where is order X", X drawn from 25 orders, so inputs repeat (a tool call, then an answer).
- **multi-step** (20%): look up an order, its customer and its invoice, then summarize (three tool calls).

The models are simulated, deterministically, with the list prices of openai:gpt-4o-mini (small) and openai:gpt-4o
(large) from Keel's pricing table. Tokens are real counts of the requests each model receives (Keel's estimate:
instructions, tool schemas and the whole conversation, every turn) and of what it answers. Assumptions a reader
should judge:
- The large model gets every task right. The small one gets easy tasks right and fails `--small-fails` (50%) of
  the `--hard` (20%) tasks — detectably by default: an invalid tool call (multi-step), an answer off its schema
  (extraction), a label outside the set (routing), or a wrong answer it reports low confidence in (lookup). Keel
  then asks one tier up. `--undetected` makes a share of those failures invisible (wrong but well formed and
  confident): no tier map can catch those, and task success then drops below the baseline's — measure it.
- The price ratio bounds the saving: gpt-4o costs 16.7× gpt-4o-mini per token, so moving every call to the small
  model would save at most 94%; escalations, and the failed cheap calls that precede them, eat into that.
- Both models answer at temperature 0, so identical requests get identical answers (the response cache applies);
  `lookup_order` declares `cache_ttl`. Lookups repeat word for word (customers ask the same question); the
  response cache's share of the saving depends on that. Everything starts with an empty cache.
- Routing tasks go through a `Batcher` on the small model (up to 16 per call); a task it cannot answer (the
  small model's invalid label, retried alone) goes to the tiered agent, like any other task.
- The baseline is the same tasks on the large model alone, one run each, no caching, no batching.
Task success is checked against each task's known answer (the exact label, the exact extracted values, the looked-up
status, all three facts of a summary), in every configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from keel import Agent, CachePolicy, ModelTiers, tool
from keel.cost import Batcher, MemoryCache
from keel.errors import ModelError
from keel.models import Model, ModelRequest, ModelResponse, RequestUsage, ToolCall, ToolResultMessage
from keel.models.pricing import price_for
from keel.store import MemoryStore

LABELS = ("billing", "shipping", "technical")
Label = Literal["billing", "shipping", "technical"]


class Extracted(BaseModel):
    order_id: str
    amount_eur: float


@dataclass(frozen=True)
class Task:
    id: int
    kind: str
    hard: bool
    text: str
    expected: Any


@tool(trusted=True, cache_ttl=600)
def lookup_order(order_id: str) -> str:
    """Look up an order's status."""
    return f"{order_id}: shipped with DHL, arriving {1 + int(order_id[2:]) % 5} days from now"


@tool(trusted=True)
def get_customer(order_id: str) -> str:
    """The customer of an order."""
    return f"customer of {order_id}: Jane Doe, gold tier"


@tool(trusted=True)
def get_invoice(order_id: str) -> str:
    """The invoice of an order."""
    return f"invoice of {order_id}: 49.90 EUR, paid"


TOOLS = [lookup_order, get_customer, get_invoice]
INSTRUCTIONS = (
    "You are the support desk of an online shop. Answer customers' questions about their orders precisely and "
    "briefly. Use the tools to look up orders, customers and invoices; never guess an order's status. "
) * 4  # a realistic system prompt: about 400 tokens


def workload(n: int, hard_share: float, seed: int = 3) -> list[Task]:
    rng = random.Random(seed)
    kinds = ["routing"] * 30 + ["extraction"] * 20 + ["lookup"] * 30 + ["multi-step"] * 20
    tasks = []
    for i in range(n):
        kind, hard = rng.choice(kinds), rng.random() < hard_share
        if kind == "routing":
            label = rng.choice(LABELS)
            text = f"[{i}] Ticket: my {'invoice is wrong' if label == 'billing' else 'parcel is late' if label == 'shipping' else 'app crashes'}, please help. Classify as billing, shipping or technical."  # noqa: E501
            tasks.append(Task(i, kind, hard, text, label))
        elif kind == "extraction":
            order, amount = f"A-{rng.randint(1000, 9999)}", rng.randint(500, 20000) / 100
            text = f"[{i}] Extract the order id and the amount: 'Hi, order {order} for {amount:.2f} EUR never came.'"
            tasks.append(Task(i, kind, hard, text, Extracted(order_id=order, amount_eur=amount)))
        elif kind == "lookup":
            order = f"A-{1000 + rng.randrange(25)}"
            tasks.append(Task(i, kind, hard, f"Where is my order {order}?", lookup_order.function(order)))
        else:
            order = f"A-{rng.randint(1000, 9999)}"
            facts = "; ".join(t.function(order) for t in TOOLS)
            tasks.append(Task(i, kind, hard, f"[{i}] Summarize order {order}: status, customer and invoice.", facts))
    return tasks


def _fails(task_text: str, share: float) -> bool:
    """Whether the small model fails this hard task: a fixed share, chosen by the task's text (deterministic)."""
    return int(hashlib.sha256(task_text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


class SimulatedModel(Model):
    """A deterministic stand-in for a real model, priced and counted like one (see the module docstring)."""

    def __init__(self, name: str, *, small: bool, hard: dict[str, bool], fail_share: float, undetected: float) -> None:
        self.name, self.small, self.hard, self.fail_share, self.undetected = name, small, hard, fail_share, undetected
        self.calls = 0

    @property
    def deterministic(self) -> bool:
        return True

    def _fails(self, task_text: str) -> bool:
        return self.small and self.hard.get(task_text, False) and _fails(task_text, self.fail_share)

    def _unseen(self, task_text: str) -> bool:
        """A failure no check can see: a wrong answer, well formed, confidently given."""
        return self._fails(task_text) and _fails(task_text + "#unseen", self.undetected)

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        first = request.messages[0].content if request.messages else ""
        if isinstance(first, str) and '"answers"' in json.dumps(request.output_schema or {}):
            text = self._batch(first)
        elif isinstance(first, str) and first.startswith("Reply with only a JSON object"):
            text = self._single(first)
        else:
            return self._turn(request, str(first))
        return ModelResponse(text=text, usage=RequestUsage(self.count_input_tokens(request), len(text) // 4 + 8))

    def _label(self, task_text: str) -> str:
        right = "billing" if "invoice" in task_text else "shipping" if "parcel" in task_text else "technical"
        if self._unseen(task_text):
            return next(label for label in LABELS if label != right)  # wrong, but a valid label
        if self._fails(task_text):
            return "urgent"  # outside the set: the batcher's validation catches it
        return right

    def _batch(self, message: str) -> str:
        items = json.loads(message.splitlines()[-1])  # the batcher's task list is the message's last line
        return json.dumps({"answers": [{"id": it["id"], "answer": self._label(it["task"])} for it in items]})

    def _single(self, message: str) -> str:
        item = json.loads(message.splitlines()[-1])
        return json.dumps({"answer": self._label(item["task"])})

    def _turn(self, request: ModelRequest, task_text: str) -> ModelResponse:
        results = [m for m in request.messages if isinstance(m, ToolResultMessage) and not m.is_error]
        text, calls, confidence = self._decide(request, task_text, results)
        out = len(text or "") // 4 + 30 * len(calls) + 8
        usage = RequestUsage(self.count_input_tokens(request), out)
        return ModelResponse(text=text, tool_calls=tuple(calls), usage=usage, confidence=confidence)

    def _decide(
        self, request: ModelRequest, task_text: str, results: list[ToolResultMessage]
    ) -> tuple[str | None, list[ToolCall], float | None]:
        fails, step = self._fails(task_text), len(results)
        if request.output_schema is not None and "order_id" in json.dumps(request.output_schema):  # extraction
            corrected = any(isinstance(m.content, str) and "schema" in m.content for m in request.messages)
            if fails and not corrected and not self._unseen(task_text):
                return "order A-? from someone", [], None  # off the schema: corrected one tier up
            order = re.search(r"A-\d+", task_text)
            amount = re.search(r"([\d.]+) EUR", task_text)
            assert order is not None and amount is not None
            wrong = 1.0 if self._unseen(task_text) else 0.0  # well formed, wrong amount
            return json.dumps({"order_id": order.group(0), "amount_eur": float(amount.group(1)) + wrong}), [], None
        if "Classify" in task_text:
            return json.dumps(self._label(task_text)), [], None  # a JSON string, as the output schema asks
        order = "A-" + task_text.split("A-")[1][:4]
        if task_text.startswith("Where is"):  # lookup
            if step == 0:
                return None, [ToolCall(f"c{step}", "lookup_order", json.dumps({"order_id": order}))], None
            if self._unseen(task_text):
                return f"Your order {order} is lost.", [], 0.95  # wrong, and sure of it
            if fails:
                return f"Your order {order} is lost.", [], 0.4  # wrong, and says it is unsure: one tier up
            return f"Your order {results[-1].content}.", [], 0.95
        wanted = ["lookup_order", "get_customer", "get_invoice"]
        if step < 3:
            name = "get_custmer" if fails and step == 1 else wanted[step]  # an invalid call: corrected one tier up
            return None, [ToolCall(f"c{step}", name, json.dumps({"order_id": order}))], None
        if self._unseen(task_text):
            return "; ".join(str(m.content) for m in results[-3:-1]), [], None  # the invoice left out
        return "; ".join(str(m.content) for m in results[-3:]), [], None


@dataclass
class Outcome:
    cost_usd: float = 0.0
    calls: int = 0
    tokens: int = 0
    succeeded: int = 0
    cache_hits: int = 0
    escalations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _correct(task: Task, output: Any) -> bool:
    if task.kind == "routing":
        return output == task.expected
    if task.kind == "extraction":
        return output == task.expected
    return isinstance(output, str) and task.expected in output


def _count(outcome: Outcome, task: Task, result: Any) -> None:
    outcome.cost_usd += result.usage.cost_usd
    outcome.tokens += result.usage.total_tokens
    for event in result.events:
        outcome.cache_hits += event.kind.value == "cache_hit"
        outcome.escalations += event.kind.value == "fallback_used" and "tier" in event.payload
    if result.status.value == "completed" and _correct(task, result.output):
        outcome.succeeded += 1
        outcome.by_kind[task.kind] = outcome.by_kind.get(task.kind, 0) + 1


def _output(task: Task) -> Any:
    return Extracted if task.kind == "extraction" else Label if task.kind == "routing" else None


async def run_baseline(tasks: list[Task], large: SimulatedModel) -> Outcome:
    outcome, store = Outcome(), MemoryStore()
    for task in tasks:
        agent = Agent(
            "desk", large, instructions=INSTRUCTIONS, tools=TOOLS, store=store, cache=None, output=_output(task)
        )
        _count(outcome, task, await agent.run(task.text))
    outcome.calls = large.calls
    return outcome


async def run_keel(tasks: list[Task], small: SimulatedModel, large: SimulatedModel, *, full: bool = True) -> Outcome:
    """The tiered agent; with `full`, also one shared cache and the batcher for routing."""
    outcome, store = Outcome(), MemoryStore()
    tiers = ModelTiers(small=small, large=large, min_confidence=0.7)
    policy = CachePolicy(backend=MemoryCache()) if full else None  # one cache for the workload, as a service has

    def agent(task: Task) -> Agent:
        return Agent(
            "desk", tiers, instructions=INSTRUCTIONS, tools=TOOLS, store=store, cache=policy, output=_output(task)
        )

    batcher = Batcher(small, max_batch=16, window_s=0.01, instructions=INSTRUCTIONS)
    routed = [t for t in tasks if t.kind == "routing" and full]
    answers = await asyncio.gather(*(batcher.submit(t.text, Label) for t in routed), return_exceptions=True)
    await batcher.close()
    for task, answer in zip(routed, answers, strict=True):
        if isinstance(answer, ModelError):  # the small model could not: the task goes to the tiered agent
            spent_in, spent_out = answer.tokens or (0, 0)  # what its failed attempts cost is still spent
            outcome.cost_usd += small.price.cost(spent_in, spent_out) if small.price is not None else 0.0
            outcome.tokens += spent_in + spent_out
            _count(outcome, task, await agent(task).run(task.text))
            continue
        assert not isinstance(answer, BaseException)
        outcome.cost_usd += answer.cost_usd
        outcome.tokens += answer.input_tokens + answer.output_tokens
        if _correct(task, answer.output):
            outcome.succeeded += 1
            outcome.by_kind[task.kind] = outcome.by_kind.get(task.kind, 0) + 1
    for task in tasks:
        if task not in routed:
            _count(outcome, task, await agent(task).run(task.text))
    outcome.calls = small.calls + large.calls
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=360)
    parser.add_argument("--hard", type=float, default=0.2, help="share of hard tasks")
    parser.add_argument("--small-fails", type=float, default=0.5, help="share of hard tasks the small model fails")
    parser.add_argument(
        "--undetected", type=float, default=0.0, help="share of those failures no check can see (wrong but well formed)"
    )
    args = parser.parse_args()
    tasks = workload(args.tasks, args.hard)
    hard = {t.text: t.hard for t in tasks}
    small_price, large_price = price_for("openai:gpt-4o-mini"), price_for("openai:gpt-4o")

    def model(name: str, small: bool) -> SimulatedModel:
        return SimulatedModel(name, small=small, hard=hard, fail_share=args.small_fails, undetected=args.undetected)

    baseline = asyncio.run(run_baseline(tasks, model("openai:gpt-4o", small=False)))
    tiered = asyncio.run(
        run_keel(tasks, model("openai:gpt-4o-mini", small=True), model("openai:gpt-4o", small=False), full=False)
    )
    keel = asyncio.run(run_keel(tasks, model("openai:gpt-4o-mini", small=True), model("openai:gpt-4o", small=False)))
    console = Console()
    counts = {k: sum(t.kind == k for t in tasks) for k in ("routing", "extraction", "lookup", "multi-step")}
    assert small_price is not None and large_price is not None
    title = (
        f"{len(tasks)} tasks ({', '.join(f'{n} {k}' for k, n in counts.items())}); {args.hard:.0%} hard, the small "
        f"model fails {args.small_fails:.0%} of those, {args.undetected:.0%} of its failures unseen. USD per 1M tokens "
        f"in/out: small {small_price.input}/"
        f"{small_price.output}, large {large_price.input}/{large_price.output}"
    )
    table = Table(title=title)
    for column in ("", "large model only", "Keel: tiers", "Keel: tiers + caching + batching"):
        table.add_column(column, justify="left" if not column else "right")
    runs = (baseline, tiered, keel)
    table.add_row("cost (USD)", *(f"{o.cost_usd:.4f}" for o in runs))
    table.add_row("saving", "—", *(f"{1 - o.cost_usd / baseline.cost_usd:.1%}" for o in runs[1:]))
    table.add_row("model calls", *(f"{o.calls:,}" for o in runs))
    table.add_row("tokens", *(f"{o.tokens:,}" for o in runs))
    table.add_row("tasks succeeded", *(f"{o.succeeded}/{len(tasks)}" for o in runs))
    table.add_row("cache hits", "—", "—", f"{keel.cache_hits:,}")
    table.add_row("tier escalations", "—", f"{tiered.escalations:,}", f"{keel.escalations:,}")
    console.print(table)
    saving = 1 - keel.cost_usd / baseline.cost_usd
    verdict = "meets" if saving >= 0.8 and keel.succeeded >= baseline.succeeded else "MISSES"
    console.print(f"cost saving at equal task success: {saving:.1%} ({verdict} the ≥ 80% target)")


if __name__ == "__main__":
    main()
